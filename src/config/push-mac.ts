import { createHmac, timingSafeEqual } from 'node:crypto'
import { canonicalJson } from '../audit/canonical-json.ts'
import type { PushedConfig, PushedConfigRepo } from '../store/pushed-config-repo.ts'
import { deriveKey, type MasterKey } from '../vault/master-key.ts'
import { policyDigest } from './policy-file.ts'

/** The HKDF label of the key pushed policies are MACed under: its own purpose, apart from the vault's and the audit's. */
const PUSH_KEY_LABEL = 'keyvalet config push v1'

/** What a push's MAC covers: which push it is, what was pushed (by digest), when and by whom. */
export type MacCovered = Pick<PushedConfig, 'seq' | 'sha256' | 'pushedAt' | 'pushedBy'>

/**
 * HMAC-SHA256, under HKDF(master key, PUSH_KEY_LABEL), of the canonical JSON of the covered
 * fields. The sequence number is covered so that a database writer cannot copy an old push's
 * text and MAC into a new, higher number and make running instances take an older policy.
 */
export function pushMac(master: MasterKey, row: MacCovered): Buffer {
  const covered = canonicalJson({ v: 1, seq: row.seq, sha256: row.sha256, pushed_at: row.pushedAt, pushed_by: row.pushedBy })
  return createHmac('sha256', deriveKey(master, PUSH_KEY_LABEL)).update(covered, 'utf8').digest()
}

/**
 * Whether a stored push is one a holder of the master key made: its text matches its digest, the
 * MAC names a key this instance holds (the current one, or the previous one during a rotation),
 * and the MAC verifies under it. `why` says what failed, safe to log (never key material).
 */
export function verifyPush(master: MasterKey, row: PushedConfig): { readonly ok: true } | { readonly ok: false; readonly why: string } {
  if (policyDigest(row.text) !== row.sha256) return { ok: false, why: 'its text does not match the digest its MAC covers (altered in the database)' }
  const key = [master, ...master.previous].find((k) => k.keyId === row.keyId)
  if (key === undefined) return { ok: false, why: `its MAC was made under master key ${row.keyId}, which this instance does not hold (it holds ${[master, ...master.previous].map((k) => k.keyId).join(', ')})` }
  const expected = pushMac(key, row)
  if (row.mac.length !== expected.length || !timingSafeEqual(row.mac, expected)) return { ok: false, why: 'its MAC does not verify (not made by a holder of the master key)' }
  return { ok: true }
}

/**
 * For a master-key rotation (`keyvalet vault rotate-master-key`): every stored push whose MAC is
 * under another key than `master`'s current one, and verifies under a key `master` holds, gets a
 * MAC under the current key (compare-and-swap on the old MAC). A push that does not verify is
 * left as it is, never re-MACed: a rotation must not launder a forged row. Returns the counts.
 */
export async function remacPushes(repo: PushedConfigRepo, master: MasterKey): Promise<{ readonly remacced: number; readonly refused: number }> {
  let remacced = 0
  let refused = 0
  for (const row of await repo.list(1_000_000)) {
    if (row.keyId === master.keyId) continue
    if (!verifyPush(master, row).ok) {
      refused++
      continue
    }
    if (await repo.remac(row.seq, row.mac, master.keyId, pushMac(master, row))) remacced++
  }
  return { remacced, refused }
}
