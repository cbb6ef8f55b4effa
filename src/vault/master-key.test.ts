import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { OperatorError } from '../errors.ts'
import { deriveKey, keyFileSource, loadMasterKey, writeKeyFile } from './master-key.ts'

const root = mkdtempSync(join(tmpdir(), 'keyvalet-mk-'))
after(() => rmSync(root, { recursive: true, force: true }))
let n = 0
const freshDir = () => join(root, `d${++n}`, 'data')

const isOperatorError = (pattern: RegExp) => (err: unknown) =>
  err instanceof OperatorError && pattern.test(err.message)

describe('loadMasterKey from the environment', () => {
  const raw = randomBytes(32)

  it('accepts 64 hex chars', () => {
    const mk = loadMasterKey({ env: { KEYVALET_MASTER_KEY: raw.toString('hex') }, dataDir: freshDir(), create: false })
    assert.deepEqual(mk.key, raw)
    assert.equal(mk.source, 'env KEYVALET_MASTER_KEY')
    assert.equal(mk.created, false)
    assert.match(mk.keyId, /^[0-9a-f]{16}$/)
  })

  it('accepts base64 and base64url, same key id', () => {
    const a = loadMasterKey({ env: { KEYVALET_MASTER_KEY: raw.toString('base64') }, dataDir: freshDir(), create: false })
    const b = loadMasterKey({ env: { KEYVALET_MASTER_KEY: raw.toString('base64url') }, dataDir: freshDir(), create: false })
    assert.deepEqual(a.key, raw)
    assert.deepEqual(b.key, raw)
    assert.equal(a.keyId, b.keyId)
  })

  it('refuses the wrong length without echoing the value', () => {
    for (const value of [randomBytes(16).toString('base64'), randomBytes(33).toString('hex'), 'not a key!']) {
      assert.throws(
        () => loadMasterKey({ env: { KEYVALET_MASTER_KEY: value }, dataDir: freshDir(), create: true }),
        (err: unknown) =>
          err instanceof OperatorError &&
          err.message.includes('KEYVALET_MASTER_KEY') &&
          !err.message.includes(value) &&
          !(err.hint ?? '').includes(value),
      )
    }
  })
})

describe('loadMasterKey from files', () => {
  it('creates the default file 0600 in a 0700 directory, and reloads it', () => {
    const dataDir = freshDir()
    const mk = loadMasterKey({ env: {}, dataDir, create: true })
    const path = join(dataDir, 'master.key')
    assert.equal(mk.created, true)
    assert.equal(mk.source, `file ${path}`)
    assert.equal(statSync(path).mode & 0o777, 0o600)
    assert.equal(statSync(dataDir).mode & 0o777, 0o700)
    assert.equal(readFileSync(path, 'utf8'), mk.key.toString('base64') + '\n')
    const again = loadMasterKey({ env: {}, dataDir, create: true })
    assert.equal(again.created, false)
    assert.deepEqual(again.key, mk.key)
  })

  it('never overwrites an existing key file', () => {
    const dataDir = freshDir()
    const first = loadMasterKey({ env: {}, dataDir, create: true })
    const before = readFileSync(join(dataDir, 'master.key'))
    for (let i = 0; i < 3; i++) loadMasterKey({ env: {}, dataDir, create: true })
    assert.deepEqual(readFileSync(join(dataDir, 'master.key')), before)
    assert.deepEqual(loadMasterKey({ env: {}, dataDir, create: false }).key, first.key)
  })

  it('without create, a missing default file is an OperatorError with a hint', () => {
    assert.throws(
      () => loadMasterKey({ env: {}, dataDir: freshDir(), create: false }),
      (err: unknown) => err instanceof OperatorError && /keyvalet start/.test(err.hint ?? ''),
    )
  })

  it('refuses a key file readable or writable by group or other', () => {
    const dataDir = freshDir()
    loadMasterKey({ env: {}, dataDir, create: true })
    const path = join(dataDir, 'master.key')
    for (const mode of [0o640, 0o604, 0o620, 0o602]) {
      chmodSync(path, mode)
      assert.throws(
        () => loadMasterKey({ env: {}, dataDir, create: true }),
        (err: unknown) => err instanceof OperatorError && err.hint === `chmod 600 ${path}`,
      )
    }
  })

  it('reads KEYVALET_MASTER_KEY_FILE, and refuses a missing one', () => {
    const raw = randomBytes(32)
    const path = join(root, `explicit-${++n}.key`)
    writeFileSync(path, raw.toString('base64') + '\n', { mode: 0o600 })
    const mk = loadMasterKey({ env: { KEYVALET_MASTER_KEY_FILE: path }, dataDir: freshDir(), create: false })
    assert.deepEqual(mk.key, raw)
    assert.equal(mk.source, `file ${path}`)
    assert.throws(
      () => loadMasterKey({ env: { KEYVALET_MASTER_KEY_FILE: path + '.nope' }, dataDir: freshDir(), create: true }),
      isOperatorError(/does not exist/),
    )
  })

  it('refuses a key file with a malformed key', () => {
    const path = join(root, `bad-${++n}.key`)
    writeFileSync(path, 'c2hvcnQ=\n', { mode: 0o600 })
    assert.throws(
      () => loadMasterKey({ env: { KEYVALET_MASTER_KEY_FILE: path }, dataDir: freshDir(), create: false }),
      isOperatorError(/valid key/),
    )
  })

  it('the environment variable wins over the files', () => {
    const raw = randomBytes(32)
    const dataDir = freshDir()
    loadMasterKey({ env: {}, dataDir, create: true })
    const mk = loadMasterKey({ env: { KEYVALET_MASTER_KEY: raw.toString('hex') }, dataDir, create: true })
    assert.deepEqual(mk.key, raw)
  })
})

describe('deriveKey', () => {
  it('derives distinct 32-byte keys per label, deterministically', () => {
    const mk = loadMasterKey({ env: { KEYVALET_MASTER_KEY: randomBytes(32).toString('hex') }, dataDir: freshDir(), create: false })
    const a = deriveKey(mk, 'keyvalet vault kek v1')
    const b = deriveKey(mk, 'keyvalet audit v1')
    assert.equal(a.length, 32)
    assert.notDeepEqual(a, b)
    assert.notDeepEqual(a, mk.key)
    assert.deepEqual(deriveKey(mk, 'keyvalet vault kek v1'), a)
  })
})

describe('key files during a rotation', () => {
  it('reads two keys (current first, then the previous one) and refuses three', () => {
    const dir = freshDir()
    mkdirSync(dir, { recursive: true })
    const file = join(dir, 'ring.key')
    const [a, b] = [randomBytes(32), randomBytes(32)]
    writeKeyFile(file, [a, b])
    assert.equal(statSync(file).mode & 0o777, 0o600)
    const mk = loadMasterKey({ env: { KEYVALET_MASTER_KEY_FILE: file }, dataDir: dir, create: false })
    assert.deepEqual(mk.key, a)
    assert.deepEqual(mk.previous.map((p) => p.key), [b])
    assert.equal(mk.file, file)
    writeKeyFile(file, [a, b, randomBytes(32)])
    assert.throws(() => loadMasterKey({ env: { KEYVALET_MASTER_KEY_FILE: file }, dataDir: dir, create: false }), isOperatorError(/does not hold a valid key/))
  })

  it('keyFileSource notices a rewritten file and loads the new ring; an env key has no source', () => {
    const dir = freshDir()
    const first = loadMasterKey({ env: {}, dataDir: dir, create: true })
    const source = keyFileSource(first, { env: {}, dataDir: dir })
    assert.ok(source !== undefined)
    assert.equal(source.changed(), false)
    const next = randomBytes(32)
    writeKeyFile(join(dir, 'master.key'), [next, first.key])
    assert.equal(source.changed(), true)
    const loaded = source.load()
    assert.deepEqual(loaded.key, next)
    assert.deepEqual(loaded.previous[0]?.keyId, first.keyId)
    assert.equal(source.changed(), false)
    const fromEnv = loadMasterKey({ env: { KEYVALET_MASTER_KEY: randomBytes(32).toString('hex') }, dataDir: dir, create: false })
    assert.equal(keyFileSource(fromEnv, { env: {}, dataDir: dir }), undefined)
  })
})
