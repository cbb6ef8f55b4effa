import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, it } from 'node:test'
import { copyStore } from './copy.ts'
import { SqliteStore } from './sqlite-store.ts'
import type { NewAuditRow } from './store.ts'

const dir = mkdtempSync(join(tmpdir(), 'keyvalet-copy-'))
after(() => rmSync(dir, { recursive: true, force: true }))

/** Row `seq` of the log: the legacy chain '' for the first 1000, then instances a and b taking turns. */
function row(seq: number): NewAuditRow {
  const instance = seq <= 1000 ? '' : seq % 2 === 0 ? 'ins_a' : 'ins_b'
  const chainSeq = seq <= 1000 ? seq : Math.ceil((seq - 1000) / 2)
  return { instance, chainSeq, hash: `h${seq}`, line: JSON.stringify({ seq, time: new Date(seq * 1000).toISOString(), agent: seq % 2 === 0 ? 'bot' : 'other', decision: 'allow' }) }
}

it('copies secrets, sessions with their key hashes, admin tokens with their digests and the audit rows as they are, into an empty store only', async () => {
  const from = SqliteStore.open(join(dir, 'a', 'keyvalet.db'))
  const to = SqliteStore.open(join(dir, 'b', 'keyvalet.db'))
  try {
    await from.secrets.put({ name: 'gh', envelope: Buffer.from([1, 2, 3]), keyId: 'k1', createdAt: 5, updatedAt: 9 })
    const keyHash = createHash('sha256').update('key').digest()
    const session = { id: 'ses_1', keyHash, agent: 'a', user: 'u', workspace: 'w', task: 't', grants: [{ connector: 'gh', maxSeverity: 'read' as const, rules: undefined }], createdAt: 1, expiresAt: 2, revokedAt: 3 }
    await from.sessions.insert(session)
    const adminToken = { id: 'kat_1', digest: createHash('sha256').update('token').digest(), name: 'orchestrator', role: 'operator' as const, createdAt: 4, expiresAt: 8, revokedAt: undefined }
    await from.adminTokens.insert(adminToken)
    for (let i = 1; i <= 2500; i++) await from.audit.append([row(i)]) // more than one page, three chains
    for (let i = 0; i < 2; i++) await from.pushedConfigs.push((seq) => ({ seq, text: `connectors: {} # ${seq}`, sha256: `s${seq}`, pushedAt: seq, pushedBy: 'ops@h', keyId: 'k1', mac: Buffer.from([seq]) }))
    assert.deepEqual(await copyStore(from, to), { secrets: 1, sessions: 1, adminTokens: 1, auditRecords: 2500, pushedConfigs: 2 })
    assert.deepEqual(await to.pushedConfigs.list(10), await from.pushedConfigs.list(10))
    assert.deepEqual(await to.secrets.get('gh'), await from.secrets.get('gh'))
    assert.deepEqual(await to.sessions.findByKeyHash(keyHash), session)
    assert.deepEqual(await to.adminTokens.findByDigest(adminToken.digest), adminToken)
    assert.deepEqual(await to.audit.read(0, 3000), await from.audit.read(0, 3000))
    // The copied rows are found by what they record, as rows appended there are.
    const bots = await to.audit.query({ agent: 'bot', since: new Date(2001 * 1000).toISOString() }, { order: 'asc', limit: 3000 })
    assert.deepEqual(bots.map((r) => r.seq), Array.from({ length: 250 }, (_, i) => 2002 + 2 * i))
    await assert.rejects(copyStore(from, to), /not empty/)
  } finally {
    await from.close()
    await to.close()
  }
})
