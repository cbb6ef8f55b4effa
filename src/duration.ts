/** Durations as operators write them (`90s`, `30m`, `1h`, `2d`): in flags and in the configuration. */

import { OperatorError } from './errors.ts'

const UNITS = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 } as const

/** A whole number and one unit. */
export const DURATION_PATTERN = '^[0-9]{1,9}[smhd]$'

/** `90s` → 90000; undefined for anything else (a sign, a fraction, no unit, more than 9 digits). */
export function durationMs(text: string): number | undefined {
  const match = new RegExp(DURATION_PATTERN).exec(text.trim())
  if (match === null) return undefined
  const unit = text.trim().slice(-1) as keyof typeof UNITS
  return Number(text.trim().slice(0, -1)) * UNITS[unit]
}

/** `90s`, `30m`, `1h`, `2d` → milliseconds; anything else is an OperatorError saying how to write one. */
export function parseDuration(text: string): number {
  const ms = durationMs(text)
  if (ms === undefined) throw new OperatorError(`not a duration: ${JSON.stringify(text)}`, 'use a whole number and a unit, e.g. 90s, 30m, 1h, 2d')
  return ms
}

/** 2592000000 → `30d`: the largest unit that divides it, else milliseconds. */
export function formatDuration(ms: number): string {
  if (!Number.isSafeInteger(ms)) return `${ms} ms`
  for (const [unit, size] of Object.entries(UNITS)) if (ms !== 0 && ms % size === 0) return `${ms / size}${unit}`
  return `${ms} ms`
}
