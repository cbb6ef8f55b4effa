import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { after, afterEach, beforeEach, describe, it } from 'node:test'
import { KeyvaletError, OperatorError } from '../errors.ts'
import { SqliteStore } from '../store/sqlite-store.ts'
import { CROSS_PROCESS_STALENESS_MS } from '../store/sqlite/fresh-reads.ts'
import { keyFileSource, loadMasterKey, writeKeyFile, type MasterKey } from './master-key.ts'
import { unopenable, Vault } from './vault.ts'

const root = mkdtempSync(join(tmpdir(), 'keyvalet-vault-'))
after(() => rmSync(root, { recursive: true, force: true }))
let n = 0

const newMaster = (): MasterKey =>
  loadMasterKey({ env: { KEYVALET_MASTER_KEY: randomBytes(32).toString('hex') }, dataDir: root, create: false })

function failsWith(why: string) {
  return (err: unknown) => {
    assert.ok(err instanceof KeyvaletError, 'expected a KeyvaletError')
    assert.equal(err.code, 'credential_unavailable')
    assert.equal(err.detail?.why, why)
    return true
  }
}

describe('Vault', () => {
  let path: string
  let store: SqliteStore
  let master: MasterKey
  let vault: Vault
  let now = 1_000

  beforeEach(() => {
    path = join(root, `v${++n}`, 'keyvalet.db')
    store = SqliteStore.open(path)
    master = newMaster()
    vault = new Vault(store.secrets, master, () => now)
  })
  afterEach(() => store.close())

  /** Runs `sql` on the database file through a second, raw connection. */
  /** A write by another connection (another process would do the same), seen by the store within CROSS_PROCESS_STALENESS_MS. */
  async function rawSql(fn: (db: DatabaseSync) => void): Promise<void> {
    const db = new DatabaseSync(path)
    try {
      fn(db)
    } finally {
      db.close()
    }
    await new Promise((resolve) => setTimeout(resolve, CROSS_PROCESS_STALENESS_MS + 1))
  }

  it('round-trips a value', async () => {
    await vault.put('github-token', Buffer.from('ghp_secret_value'))
    assert.equal((await vault.open('github-token')).toString(), 'ghp_secret_value')
  })

  it('a second put replaces the value and keeps createdAt', async () => {
    await vault.put('api', Buffer.from('one'))
    now = 2_000
    await vault.put('api', Buffer.from('two'))
    assert.equal((await vault.open('api')).toString(), 'two')
    const [meta] = await vault.list()
    assert.equal(meta?.createdAt, 1_000)
    assert.equal(meta?.updatedAt, 2_000)
  })

  it('lists names and metadata, never values or envelopes', async () => {
    await vault.put('a', Buffer.from('value-a'))
    await vault.put('b', Buffer.from('value-b'))
    const list = await vault.list()
    assert.deepEqual(list.map((r) => r.name), ['a', 'b'])
    for (const r of list) {
      assert.deepEqual(Object.keys(r).sort(), ['createdAt', 'keyId', 'name', 'updatedAt'])
      assert.equal(r.keyId, master.keyId)
    }
    assert.doesNotMatch(JSON.stringify(list), /value-/)
  })

  it('deletes', async () => {
    await vault.put('a', Buffer.from('x'))
    assert.equal(await vault.delete('a'), true)
    assert.equal(await vault.delete('a'), false)
    await assert.rejects(vault.open('a'), failsWith('secret_missing'))
  })

  it('a missing secret is credential_unavailable / secret_missing', async () => {
    await assert.rejects(vault.open('nope'), failsWith('secret_missing'))
  })

  it('openOptional: undefined for a missing secret, the value when present, every other failure thrown', async () => {
    assert.equal(await vault.openOptional('nope'), undefined)
    await vault.put('s', Buffer.from('value-s'))
    assert.equal((await vault.openOptional('s'))?.toString(), 'value-s')
    const err = await new Vault(store.secrets, newMaster(), () => now).openOptional('s').catch((e: unknown) => e)
    failsWith('master_key_mismatch')(err)
  })

  it('unopenable: an operator error naming the record and why, with the hint; anything else unchanged', async () => {
    await vault.put('s', Buffer.from('value-s'))
    const err = await new Vault(store.secrets, newMaster(), () => now).open('s').catch((e: unknown) => e)
    const reported = unopenable(err, 'the widget key', 'use the right master key')
    assert.ok(reported instanceof OperatorError)
    assert.match(reported.message, /^the widget key in the vault cannot be opened: secret s was sealed by master key /)
    assert.equal(reported.hint, 'use the right master key')
    assert.equal(reported.cause, err)
    const other = new Error('disk on fire')
    assert.equal(unopenable(other, 'the widget key', 'hint'), other)
  })

  it('validates names and refuses empty values', async () => {
    for (const bad of ['', 'A', '-x', '.x', 'a/b', 'a b', 'x'.repeat(64), 'é']) {
      assert.throws(() => Vault.validateName(bad), OperatorError, bad)
      await assert.rejects(vault.put(bad, Buffer.from('v')), OperatorError)
    }
    for (const good of ['a', '0', 'github.token_1-x', 'x'.repeat(63)]) Vault.validateName(good)
    await assert.rejects(vault.put('empty', Buffer.alloc(0)), OperatorError)
  })

  it('envelopes swapped between two names do not open', async () => {
    await vault.put('alpha', Buffer.from('value-alpha'))
    await vault.put('beta', Buffer.from('value-beta'))
    await rawSql((db) => {
      const get = db.prepare('SELECT envelope FROM secrets WHERE name = ?')
      const a = get.get('alpha')?.envelope as Uint8Array
      const b = get.get('beta')?.envelope as Uint8Array
      const set = db.prepare('UPDATE secrets SET envelope = ? WHERE name = ?')
      set.run(b, 'alpha')
      set.run(a, 'beta')
    })
    await assert.rejects(vault.open('alpha'), failsWith('record_tampered'))
    await assert.rejects(vault.open('beta'), failsWith('record_tampered'))
  })

  it('one flipped byte anywhere in the envelope is record_tampered', async () => {
    await vault.put('s', Buffer.from('value-s'))
    const original = Buffer.from((await store.secrets.get('s'))?.envelope ?? [])
    for (const index of [0, 5, 20, 40, 65, 80, original.length - 1]) {
      const copy = Buffer.from(original)
      copy[index] = (copy[index] ?? 0) ^ 0x01
      await rawSql((db) => db.prepare('UPDATE secrets SET envelope = ? WHERE name = ?').run(copy, 's'))
      await assert.rejects(vault.open('s'), failsWith('record_tampered'), `byte ${index}`)
    }
    await rawSql((db) => db.prepare('UPDATE secrets SET envelope = ? WHERE name = ?').run(original.subarray(0, 60), 's'))
    await assert.rejects(vault.open('s'), failsWith('record_tampered'), 'truncated')
  })

  it('another master key is master_key_mismatch, naming both key ids', async () => {
    await vault.put('s', Buffer.from('value-s'))
    const other = newMaster()
    const err = await new Vault(store.secrets, other, () => now).open('s').catch((e: unknown) => e)
    failsWith('master_key_mismatch')(err)
    const message = String((err as KeyvaletError).detail?.message)
    assert.ok(message.includes(master.keyId) && message.includes(other.keyId), message)
  })

  it('a record relabelled with the right key id but sealed by another key is record_tampered', async () => {
    const other = newMaster()
    await new Vault(store.secrets, other, () => now).put('s', Buffer.from('value-s'))
    await rawSql((db) => db.prepare('UPDATE secrets SET key_id = ? WHERE name = ?').run(master.keyId, 's'))
    await assert.rejects(vault.open('s'), failsWith('record_tampered'))
  })

  it('the plaintext never appears in the database files', async () => {
    const plaintext = `sk-live-${randomBytes(16).toString('hex')}`
    await vault.put('model-key', Buffer.from(plaintext))
    await vault.put('model-key-2', Buffer.from(plaintext))
    assert.equal((await vault.open('model-key')).toString(), plaintext)
    const files = [path, `${path}-wal`].filter((f) => existsSync(f))
    assert.ok(files.includes(`${path}-wal`), 'expected a WAL file while the store is open')
    for (const f of files) {
      const bytes = readFileSync(f)
      assert.equal(bytes.includes(plaintext), false, f)
      assert.equal(bytes.includes(Buffer.from(plaintext).toString('base64')), false, f)
      assert.equal(bytes.includes(Buffer.from(plaintext).toString('hex')), false, f)
    }
  })
})

describe('Vault re-wrap (master-key rotation)', () => {
  it('re-wraps a record under the current key without touching the value ciphertext; the old key no longer opens it', async () => {
    const path = join(root, `r${++n}`, 'keyvalet.db')
    const store = SqliteStore.open(path)
    try {
      const old = newMaster()
      const next = newMaster()
      await new Vault(store.secrets, old, () => 1).put('github', Buffer.from('ghp_value'))
      const before = await store.secrets.get('github')
      // A vault holding the new key as current and the old one as previous, as during a rotation.
      const rotating = new Vault(store.secrets, { ...next, previous: [old] }, () => 2)
      assert.deepEqual(await rotating.open('github'), Buffer.from('ghp_value'))
      assert.equal(await rotating.rewrap('github'), true)
      assert.equal(await rotating.rewrap('github'), false, 'already current')
      const after = await store.secrets.get('github')
      assert.equal(after?.keyId, next.keyId)
      assert.deepEqual(after?.envelope.subarray(61), before?.envelope.subarray(61), 'the value part is kept byte for byte')
      assert.notDeepEqual(after?.envelope.subarray(0, 61), before?.envelope.subarray(0, 61))
      assert.deepEqual(await new Vault(store.secrets, next, () => 3).open('github'), Buffer.from('ghp_value'))
      await assert.rejects(new Vault(store.secrets, old, () => 3).open('github'), failsWith('master_key_mismatch'))
    } finally {
      await store.close()
    }
  })

  it('never loses a write that lands between its read and its swap', async () => {
    const path = join(root, `r${++n}`, 'keyvalet.db')
    const store = SqliteStore.open(path)
    try {
      const old = newMaster()
      const next = newMaster()
      await new Vault(store.secrets, old, () => 1).put('token', Buffer.from('v1'))
      const racing = { ...store.secrets, swap: async (name: string, expected: Buffer, record: Parameters<typeof store.secrets.swap>[2]) => {
        // Another process writes v2 (under the old key) just before our swap.
        await new Vault(store.secrets, old, () => 2).put('token', Buffer.from('v2'))
        racing.swap = store.secrets.swap
        return store.secrets.swap(name, expected, record)
      } }
      const rotating = new Vault(racing, { ...next, previous: [old] }, () => 3)
      assert.equal(await rotating.rewrap('token'), true)
      assert.deepEqual(await new Vault(store.secrets, next, () => 4).open('token'), Buffer.from('v2'))
    } finally {
      await store.close()
    }
  })
})

describe('Vault key ids (what an instance reports it holds)', () => {
  it('lists the sealing key first; a staged key in the file is held after followKeyFile, listeners hear it once', async () => {
    const dir = join(root, `k${++n}`)
    const store = SqliteStore.open(join(dir, 'keyvalet.db'))
    try {
      const first = loadMasterKey({ env: {}, dataDir: dir, create: true })
      const vault = new Vault(store.secrets, first, () => 1, keyFileSource(first, { env: {}, dataDir: dir }))
      let heard = 0
      vault.onKeysChanged(() => heard++)
      assert.deepEqual(vault.keyIds, [first.keyId])
      vault.followKeyFile()
      assert.equal(heard, 0, 'an unchanged file is no change')
      // Staged as the second line: held for opening, not sealing.
      const staged = randomBytes(32)
      writeKeyFile(join(dir, 'master.key'), [first.key, staged])
      vault.followKeyFile()
      const stagedId = loadMasterKey({ env: { KEYVALET_MASTER_KEY: staged.toString('hex') }, dataDir: dir, create: false }).keyId
      assert.deepEqual(vault.keyIds, [first.keyId, stagedId])
      assert.equal(heard, 1)
      // Then made current: it seals under it, and still holds the first.
      writeKeyFile(join(dir, 'master.key'), [staged, first.key])
      vault.followKeyFile()
      assert.deepEqual(vault.keyIds, [stagedId, first.keyId])
      assert.equal(vault.keyId, stagedId)
      assert.equal(heard, 2)
      vault.followKeyFile()
      assert.equal(heard, 2)
    } finally {
      await store.close()
    }
  })
})
