import { durationMs } from '../duration.ts'
import { OperatorError } from '../errors.ts'

/** An ISO 8601 time, or a duration back from now (24h, 7d), as epoch ms; `option` names it in the error. */
export function sinceMs(text: string, option: string): number {
  const back = durationMs(text)
  if (back !== undefined) return Date.now() - back
  const at = Date.parse(text)
  if (Number.isNaN(at) || !/^\d{4}-\d{2}-\d{2}/.test(text)) throw new OperatorError(`${option}: not a time or a duration: ${JSON.stringify(text)}`, `e.g. ${option} 24h or ${option} 2026-12-01T00:00:00Z`)
  return at
}
