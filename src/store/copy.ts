import { OperatorError } from '../errors.ts'
import type { AuditFacets, Store } from './store.ts'

export interface CopyCounts {
  readonly secrets: number
  readonly sessions: number
  readonly adminTokens: number
  readonly auditRecords: number
  readonly pushedConfigs: number
}

/** Audit rows moved per transaction. */
const PAGE = 1000

/**
 * Moves an installation from one store to another, as it is: the secrets' envelopes (still
 * sealed: no master key is needed, and the audit chain's key travels among them), the sessions
 * with their key hashes and revocations, the admin tokens with their digests (callers of the admin
 * API keep their tokens), and the audit rows byte for byte, each in its chain at its place (with
 * the facets a query finds them by, read from each line), so every chain verifies in its new place,
 * and the pushed policies with their numbers and MACs (instances following pushes verify them there
 * as before). The destination must be empty; the source must not be in use (checked at the
 * end: a source whose audit log grew meanwhile fails the copy). Counters (budgets, rate limits)
 * are not moved: they start again from 0 in the new store.
 */
export async function copyStore(from: Store, to: Store): Promise<CopyCounts> {
  const used = (await to.secrets.list()).length + (await to.sessions.list()).length + (await to.adminTokens.list()).length + (await to.pushedConfigs.latestSeq())
  if (used > 0 || (await to.audit.last()) !== undefined) {
    throw new OperatorError('the destination store is not empty', 'copy into a new, empty database (keyvalet db copy never merges installations)')
  }
  let secrets = 0
  for (const { name } of await from.secrets.list()) {
    const record = await from.secrets.get(name)
    if (record === undefined) continue // deleted meanwhile
    await to.secrets.put(record)
    secrets++
  }
  const sessions = await from.sessions.listStored()
  for (const session of sessions) await to.sessions.insert(session)
  const adminTokens = await from.adminTokens.listStored()
  for (const token of adminTokens) await to.adminTokens.insert(token)
  // Oldest first, each under its own number: the MAC covers it.
  const pushes = (await from.pushedConfigs.list(1_000_000)).reverse()
  for (const push of pushes) await to.pushedConfigs.push(() => push)
  let copied = 0
  let last = 0
  for (;;) {
    const rows = await from.audit.read(last, PAGE)
    if (rows.length === 0) break
    // In the source's order, each row in its chain at its place (the store numbers them anew).
    await to.audit.append(rows.map(({ seq: _seq, ...row }) => ({ ...row, facets: facetsOfLine(row.line) })))
    copied += rows.length
    last = rows.at(-1)?.seq ?? last
  }
  if (((await from.audit.last())?.seq ?? 0) !== last) {
    throw new OperatorError('the source was written to during the copy', 'stop every keyvalet using it, then copy again into a new, empty database')
  }
  return { secrets, sessions: sessions.length, adminTokens: adminTokens.length, auditRecords: copied, pushedConfigs: pushes.length }
}

/**
 * What an audit query finds a copied row by, read from its line: the record's own fields, as the
 * audit log stores them beside a line it appends. A line that is not a record (not a JSON object
 * with a time and a decision) gets none, and is found by seq only.
 */
function facetsOfLine(line: string): AuditFacets | undefined {
  let parsed: unknown
  try {
    parsed = JSON.parse(line)
  } catch {
    return undefined
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined
  const record = parsed as Record<string, unknown>
  const text = (name: string): string | null => (typeof record[name] === 'string' ? record[name] : null)
  const time = text('time')
  const decision = text('decision')
  if (time === null || decision === null) return undefined
  return {
    time, decision, session: text('session'), agent: text('agent'), user: text('user'), workspace: text('workspace'),
    task: text('task'), connector: text('connector'), error: text('error'), mode: text('mode'), phase: text('phase'),
  }
}
