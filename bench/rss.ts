/** Resident memory and CPU time of another process, from /proc (Linux only). */

import { readFileSync, writeFileSync } from 'node:fs'

const MiB = 1024 * 1024

function statusField(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8')
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)
    return m === null ? undefined : Number(m[1]) * 1024
  } catch {
    return undefined
  }
}

/** VmRSS in bytes, undefined when the process is gone. */
export function readRss(pid: number): number | undefined {
  return statusField(pid, 'VmRSS')
}

/** VmHWM (the kernel's own peak RSS) in bytes. */
export function readHwm(pid: number): number | undefined {
  return statusField(pid, 'VmHWM')
}

/** Resets VmHWM to the current RSS (clear_refs 5); false when not permitted. */
export function resetHwm(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5')
    return true
  } catch {
    return false
  }
}

/** user+system CPU seconds consumed so far (clock ticks assumed 100 Hz, the Linux default). */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return undefined
  }
}

export interface RssSummary {
  readonly samples: number
  readonly firstMiB: number
  readonly peakMiB: number
  /** VmHWM after the window, when it could be reset at its start (catches peaks between samples). */
  readonly hwmMiB: number | undefined
}

/** Samples VmRSS every `intervalMs` until stop(). */
export class RssSampler {
  readonly #pid: number
  readonly #timer: NodeJS.Timeout
  readonly #hwmReset: boolean
  #first: number | undefined
  #peak = 0
  #count = 0

  constructor(pid: number, intervalMs = 100) {
    this.#pid = pid
    this.#hwmReset = resetHwm(pid)
    this.#sample()
    this.#timer = setInterval(() => this.#sample(), intervalMs)
  }

  #sample(): void {
    const rss = readRss(this.#pid)
    if (rss === undefined) return
    this.#first ??= rss
    if (rss > this.#peak) this.#peak = rss
    this.#count++
  }

  stop(): RssSummary {
    clearInterval(this.#timer)
    this.#sample()
    const hwm = this.#hwmReset ? readHwm(this.#pid) : undefined
    return { samples: this.#count, firstMiB: (this.#first ?? 0) / MiB, peakMiB: this.#peak / MiB, hwmMiB: hwm === undefined ? undefined : hwm / MiB }
  }
}

export function toMiB(bytes: number | undefined): number {
  return bytes === undefined ? Number.NaN : bytes / MiB
}
