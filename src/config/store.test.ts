import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { OperatorError } from '../errors.ts'
import { locateStore } from '../store/location.ts'
import { parseConfig } from './load.ts'

const dir = mkdtempSync(join(tmpdir(), 'keyvalet-store-config-'))
after(() => rmSync(dir, { recursive: true, force: true }))
const file = join(dir, 'keyvalet.yaml')

function load(store: string) {
  return parseConfig(`version: 1\n${store}\nconnectors: {}\n`, file)
}

function refusal(store: string): string {
  try {
    load(store)
  } catch (err) {
    assert.ok(err instanceof OperatorError, String(err))
    return err.message
  }
  return assert.fail('expected the store block to be refused')
}

describe('the store block', () => {
  it('is SQLite in the data folder when absent', () => {
    assert.deepEqual(load('').store, { kind: 'sqlite', path: join(dir, '.keyvalet', 'keyvalet.db'), fsync: false })
  })

  it('names a PostgreSQL server, verify-full by default, the password read from its file only when located', () => {
    writeFileSync(join(dir, 'pw'), 's3cret\nignored\n')
    const store = load('store: { url: "postgres://keyvalet@db.internal:6432/kv", password_file: pw }').store
    assert.deepEqual(store, { kind: 'postgres', host: 'db.internal', port: 6432, database: 'kv', user: 'keyvalet', password: { file: join(dir, 'pw') }, tls: { mode: 'verify-full' }, keptReads: { resyncMs: 250, graceMs: 30_000 } })
    const located = locateStore(store, {})
    assert.equal(located.kind === 'postgres' && located.password, 's3cret')
    assert.equal('keptReads' in located, false, 'the location is where the store is, not how it is read')
  })

  it('takes how a serving instance keeps reads: the resync interval and the grace while the server is unreachable', () => {
    const store = load('store: { url: "postgres://keyvalet@db.internal/kv", resync_ms: 100, unavailable_grace: 2m }').store
    assert.deepEqual(store.kind === 'postgres' && store.keptReads, { resyncMs: 100, graceMs: 120_000 })
  })

  it('reads the password from the environment variable it names, and says so when it is not set', () => {
    const store = load('store: { url: "postgres://keyvalet@[2001:db8::1]/kv", password_env: KV_PG }').store
    assert.equal(store.kind === 'postgres' && store.host, '2001:db8::1')
    assert.equal((locateStore(store, { KV_PG: 'pw' }) as { password?: string }).password, 'pw')
    assert.throws(() => locateStore(store, {}), /the environment variable KV_PG \(store.password_env\) is not set/)
  })

  it('takes a Unix socket folder, where cleartext is allowed', () => {
    const store = load('store: { url: "postgres://keyvalet@localhost/kv?host=/run/postgresql", tls: { mode: disable } }').store
    assert.deepEqual(store, { kind: 'postgres', host: '/run/postgresql', port: 5432, database: 'kv', user: 'keyvalet', password: undefined, tls: { mode: 'disable' }, keptReads: { resyncMs: 250, graceMs: 30_000 } })
  })

  const refused = [
    ['a password in the URL', 'store: { url: "postgres://keyvalet:hunter2@db/kv" }', 'store.url: must not carry a password: give it with password_file or password_env'],
    ['cleartext across a network', 'store: { url: "postgres://keyvalet@db.internal/kv", tls: { mode: disable } }', 'store.tls.mode: disable sends the password and every secret envelope in cleartext: allowed only to a loopback address or a Unix socket, not db.internal'],
    ['a libpq parameter in the URL', 'store: { url: "postgres://keyvalet@db/kv?sslmode=require" }', 'store.url: takes no parameter but host (a Unix socket folder); not sslmode: TLS is set under store.tls'],
    ['no role', 'store: { url: "postgres://db/kv" }', 'store.url: must name the role: postgres://USER@HOST/DATABASE'],
    ['no database', 'store: { url: "postgres://keyvalet@db" }', 'store.url: must name one database: postgres://USER@HOST/DATABASE'],
    ['another scheme', 'store: { url: "mysql://keyvalet@db/kv" }', 'store.url: must be a postgres:// URL'],
    ['two passwords', 'store: { url: "postgres://keyvalet@db/kv", password_file: pw, password_env: PW }', 'store.password_env: give the password one way: password_file or password_env'],
    ['a CA file that is not one', 'store: { url: "postgres://keyvalet@db/kv", tls: { ca_file: keyvalet.yaml } }', `store.tls.ca_file: ${file} is not a PEM file of CA certificates`],
  ] as const
  for (const [what, block, message] of refused) {
    it(`refuses ${what}`, () => {
      writeFileSync(file, '')
      assert.match(refusal(block), new RegExp(`: ${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`))
    })
  }
})
