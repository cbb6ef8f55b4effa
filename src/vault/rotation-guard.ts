import type { InstanceReport } from '../store/store.ts'

/** How often a serving instance looks at its key file (one stat), so that a staged key is held and reported without a request needing it. */
export const KEY_FILE_POLL_MS = 1_000

/** An instance that would be left unable to open records re-wrapped under the new key, and why. */
export interface UnreadyInstance {
  readonly instance: string
  readonly host: string
  readonly pid: number
  readonly why: string
}

export type RotationVerdict = { readonly allow: true } | { readonly allow: false; readonly unready: readonly UnreadyInstance[] }

/**
 * Whether every record may be re-wrapped under the master key `newKeyId` now, given the reports
 * of the instances heard from recently (InstanceReport.keyIds: the master keys each holds).
 *
 * Algorithm: an instance is ready when its report lists `newKeyId` among the keys it holds; one
 * that lists no key ids at all (a keyvalet from before instances reported them) cannot be shown
 * ready, so it counts as unready. Allowed when no instance is unready (also when none is running:
 * nobody can be left behind). Otherwise refused, naming each unready instance in the reports'
 * order, with what it holds instead.
 */
export function decideRotation(live: readonly InstanceReport[], newKeyId: string): RotationVerdict {
  const unready: UnreadyInstance[] = []
  for (const r of live) {
    if (r.keyIds.includes(newKeyId)) continue
    const why = r.keyIds.length === 0
      ? 'reports no master key ids (a keyvalet older than this check): it cannot be shown to hold the new key'
      : `holds master key${r.keyIds.length === 1 ? '' : 's'} ${r.keyIds.join(', ')}, not ${newKeyId}`
    unready.push({ instance: r.instance, host: r.host, pid: r.pid, why })
  }
  return unready.length === 0 ? { allow: true } : { allow: false, unready }
}
