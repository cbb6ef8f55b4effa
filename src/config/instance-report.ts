import { hostname } from 'node:os'
import type { Logger } from '../log.ts'
import type { InstanceRepo } from '../store/store.ts'

/** How often a serving instance says it is still there (and under which configuration). */
export const INSTANCE_REPORT_MS = 10_000
/** An instance not heard from for this long is no longer listed as running (it stopped, or cannot reach the store). */
export const INSTANCE_STALE_MS = 3 * INSTANCE_REPORT_MS

export interface InstanceReporter {
  /** Settles once the report made at start is written, or has failed (and been logged). Never rejects. */
  readonly started: Promise<void>
  /** Says it now (after a reload put a new configuration in force, or the vault's keys changed). Never throws. */
  now(): Promise<void>
  /** Stops saying it and removes this instance's report (it is stopping). */
  stop(): Promise<void>
}

/**
 * Keeps this instance's report in the store (store.ts InstanceReport): at start, whenever `now`
 * is called, and every INSTANCE_REPORT_MS. A report that fails (the store is unreachable) is
 * logged once per run of failures and tried again at the next turn; it never stops serving.
 */
export function startInstanceReports(opts: {
  readonly repo: InstanceRepo
  readonly instance: string
  readonly configVersion: () => string
  /** The pushed policy's sequence number in force, if any. */
  readonly pushedSeq: () => number | undefined
  /** The master key ids the vault holds now (Vault.keyIds). */
  readonly keyIds: () => readonly string[]
  readonly clock: () => number
  readonly log: Logger
}): InstanceReporter {
  const startedAt = opts.clock()
  let failing = false
  let last: Promise<void> = Promise.resolve()
  const send = (): Promise<void> => {
    last = last.then(async () => {
      try {
        await opts.repo.report({ instance: opts.instance, host: hostname(), pid: process.pid, configVersion: opts.configVersion(), pushedSeq: opts.pushedSeq(), keyIds: opts.keyIds(), startedAt, seenAt: opts.clock() })
        if (failing) opts.log.info('instance report written again', { instance: opts.instance })
        failing = false
      } catch (err) {
        if (!failing) opts.log.warn('cannot write this instance\'s report to the store (GET /v1/fleet will not list it until it can)', { instance: opts.instance, cause: err })
        failing = true
      }
    })
    return last
  }
  const started = send()
  const timer = setInterval(() => void send(), INSTANCE_REPORT_MS)
  timer.unref()
  return {
    started,
    now: send,
    async stop() {
      clearInterval(timer)
      await last
      await opts.repo.remove(opts.instance).catch(() => false)
    },
  }
}
