import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { connect, createServer, type LookupFunction, type Server } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startDnsServer, type DnsServer } from '../../test/helpers/dns-server.ts'
import { KeyvaletError } from '../errors.ts'
import { egressGuard, guardedConnectOptions } from './connect.ts'
import { Resolver } from './resolver.ts'

let dns: DnsServer
let server: Server
let port: number

before(async () => {
  dns = await startDnsServer({ 'loopback.test': { a: ['127.0.0.1'] } })
  server = createServer((s) => s.end('hello'))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  port = (server.address() as { port: number }).port
})
after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()))
  await dns.close()
})

const resolver = (): Resolver => new Resolver({ servers: [dns.address], timeoutMs: 1000 })

function code(err: unknown): string {
  assert.ok(err instanceof KeyvaletError, `expected a KeyvaletError, got ${String(err)}`)
  return err.code
}

/** Connects with the options and returns the first bytes, or the error. */
function dial(options: { host: string; lookup: LookupFunction }): Promise<string | Error> {
  return new Promise((resolve) => {
    const socket = connect({ ...options, port })
    socket.once('data', (d) => { socket.destroy(); resolve(d.toString()) })
    socket.once('error', (err) => resolve(err))
  })
}

describe('egressGuard', () => {
  it('admits a public name and a bracketed public IPv6 literal, returning the host as net wants it', () => {
    const guard = egressGuard({ allowAddresses: [], resolver: resolver() })
    assert.equal(guard.admit('api.example.com'), 'api.example.com')
    assert.equal(guard.admit('[2606:4700::1111]'), '2606:4700::1111')
  })

  it('refuses literals outside allow_addresses, odd encodings and malformed names before any dial', () => {
    const guard = egressGuard({ allowAddresses: [], resolver: resolver() })
    assert.equal(code(catchOf(() => guard.admit('127.0.0.1'))), 'upstream_address_refused')
    assert.equal(code(catchOf(() => guard.admit('[::1]'))), 'upstream_address_refused')
    assert.equal(code(catchOf(() => guard.admit('0x7f.1'))), 'upstream_host_invalid')
    assert.equal(code(catchOf(() => guard.admit('a b'))), 'upstream_host_invalid')
    assert.equal(egressGuard({ allowAddresses: ['127.0.0.0/8'], resolver: resolver() }).admit('127.0.0.1'), '127.0.0.1')
  })

  it('guardedConnectOptions: a name resolving to a refused address is not dialed; allowed, it is', async () => {
    const refused = await dial(guardedConnectOptions('loopback.test', { allowAddresses: [], resolver: resolver() }))
    assert.ok(refused instanceof Error && /KEYVALET_ADDRESS_REFUSED/.test(String((refused as NodeJS.ErrnoException).code)), String(refused))
    assert.equal(await dial(guardedConnectOptions('loopback.test', { allowAddresses: ['127.0.0.1/32'], resolver: resolver() })), 'hello')
  })

  it('is the only place that builds the guard: no caller assembles checkLiteral, createGuardedLookup or an AddressPolicy itself', () => {
    const own = new Set(['connect.ts', 'guarded-lookup.ts', 'address-policy.ts'].map((f) => join(import.meta.dirname, f)))
    const offenders = sourceFiles(join(import.meta.dirname, '..'))
      .filter((f) => !own.has(f))
      .filter((f) => /\b(checkLiteral|createGuardedLookup|new AddressPolicy)\b/.test(readFileSync(f, 'utf8')))
    assert.deepEqual(offenders, [])
  })
})

function catchOf(fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  assert.fail('expected a throw')
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.test.ts'))
    .map((e) => join(e.parentPath, e.name))
}
