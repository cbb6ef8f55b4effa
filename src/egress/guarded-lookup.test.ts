import assert from 'node:assert/strict'
import type { LookupAddress } from 'node:dns'
import { connect, createServer, type LookupFunction, type Server, type Socket } from 'node:net'
import { after, before, beforeEach, describe, it } from 'node:test'
import { Agent, request } from 'undici'
import { startDnsServer, type DnsServer } from '../../test/helpers/dns-server.ts'
import { startUpstream, type Upstream } from '../../test/helpers/upstream.ts'
import { KeyvaletError } from '../errors.ts'
import { AddressPolicy } from './address-policy.ts'
import { EgressError, toEgressKeyvaletError } from './egress-error.ts'
import { checkLiteral, createGuardedLookup, type LookupOutcome } from './guarded-lookup.ts'
import { Resolver } from './resolver.ts'

let dns: DnsServer
let server: Server
let port: number
/** Remote addresses of the connections the TCP server accepted, in order. */
let accepted: string[]
const open = new Set<Socket>()

before(async () => {
  dns = await startDnsServer()
  server = createServer((s) => {
    accepted.push(s.remoteAddress ?? '?')
    open.add(s)
    s.on('close', () => open.delete(s))
    s.on('error', () => {})
    s.end('hello')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const a = server.address()
  if (a === null || typeof a === 'string') throw new Error('no address')
  port = a.port
})
after(async () => {
  for (const s of open) s.destroy()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  await dns.close()
})
beforeEach(() => {
  accepted = []
})

function guard(allow: string[] = [], onLookup?: (o: LookupOutcome) => void, clock?: () => number): LookupFunction {
  const resolver = new Resolver({ servers: [dns.address], timeoutMs: 1000, ...(clock !== undefined ? { clock } : {}) })
  return createGuardedLookup({ resolver, policy: new AddressPolicy({ allow }), ...(onLookup !== undefined ? { onLookup } : {}) })
}

/** Counts calls and records what the lookup handed to net. */
function spy(inner: LookupFunction): { lookup: LookupFunction; calls: number; returned: string[] } {
  const s = {
    calls: 0,
    returned: [] as string[],
    lookup: ((hostname, options, cb) => {
      s.calls++
      inner(hostname, options, (err, address, family) => {
        if (err === null) s.returned.push(...(Array.isArray(address) ? address.map((a) => a.address) : [address]))
        cb(err, address, family)
      })
    }) as LookupFunction,
  }
  return s
}

type Dialed = { ok: true; remoteAddress: string; data: string } | { ok: false; err: NodeJS.ErrnoException }

/** A real net.connect to `host:port` with the given lookup; resolves with what happened (bounded by the socket timeout). */
function dial(host: string, lookup: LookupFunction, autoSelectFamily = false): Promise<Dialed> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, lookup, autoSelectFamily, timeout: 2000 })
    let data = ''
    socket.setEncoding('utf8')
    socket.on('data', (d: string) => { data += d })
    socket.on('timeout', () => socket.destroy(new Error('test dial timed out')))
    socket.on('error', (err) => resolve({ ok: false, err }))
    socket.on('end', () => {
      resolve({ ok: true, remoteAddress: socket.remoteAddress ?? '', data })
      socket.end()
    })
  })
}

function assertRefused(d: Dialed, range: string, via?: string): EgressError {
  assert.equal(d.ok, false, 'expected the connection to be refused')
  const err = (d as { err: unknown }).err
  assert.ok(err instanceof EgressError, String(err))
  assert.equal(err.code, 'KEYVALET_ADDRESS_REFUSED')
  assert.equal(err.detail.why, 'address_refused')
  assert.equal(err.detail.range, range)
  if (via !== undefined) assert.equal(err.detail.refused?.[0]?.via, via)
  return err
}

describe('guarded lookup with a real net.connect', () => {
  it('refuses a name that resolves to loopback, by default, before any byte is sent', async () => {
    dns.table = { 'api.test': { a: ['127.0.0.1'] } }
    const d = await dial('api.test', guard())
    const err = assertRefused(d, '127.0.0.0/8')
    assert.deepEqual(err.detail.refused, [{ address: '127.0.0.1', family: 4, range: '127.0.0.0/8' }])
    assert.equal(err.detail.host, 'api.test')
    assert.deepEqual(accepted, [])
    const k = err.toKeyvaletError()
    assert.equal(k.code, 'upstream_address_refused')
    assert.equal(k.detail?.why, 'address_refused')
    assert.equal(k.message, 'The upstream address is not allowed.') // nothing about internal addresses
  })

  for (const autoSelectFamily of [false, true]) {
    it(`connects when the connector allows 127.0.0.1/32 (autoSelectFamily ${autoSelectFamily})`, async () => {
      dns.table = { 'api.test': { a: ['127.0.0.1'] } }
      const s = spy(guard(['127.0.0.1/32']))
      const d = await dial('api.test', s.lookup, autoSelectFamily)
      assert.deepEqual(d, { ok: true, remoteAddress: '127.0.0.1', data: 'hello' })
      assert.deepEqual(accepted, ['127.0.0.1'])
      assert.equal(s.calls, 1)
      assert.deepEqual(s.returned, ['127.0.0.1'])
    })
  }

  it('drops refused addresses from a mixed answer and dials only an allowed one', async () => {
    dns.table = { 'mixed.test': { a: ['169.254.169.254', '10.0.0.1', '127.0.0.1'], aaaa: ['fd00:ec2::254', '::1'] } }
    const outcomes: LookupOutcome[] = []
    const d = await dial('mixed.test', guard(['127.0.0.1/32'], (o) => outcomes.push(o)), true)
    assert.deepEqual(d, { ok: true, remoteAddress: '127.0.0.1', data: 'hello' })
    assert.deepEqual(outcomes, [{
      host: 'mixed.test',
      allowed: [{ address: '127.0.0.1', family: 4 }],
      refused: [
        { address: '169.254.169.254', family: 4, range: '169.254.0.0/16' },
        { address: '10.0.0.1', family: 4, range: '10.0.0.0/8' },
        { address: 'fd00:ec2::254', family: 6, range: 'fc00::/7' },
        { address: '::1', family: 6, range: '::1/128' },
      ],
    }])
  })

  for (const autoSelectFamily of [false, true]) {
    it(`DNS rebinding fails: each connect dials exactly the address it checked (autoSelectFamily ${autoSelectFamily})`, async () => {
      dns.table = { 'rebind.test': { a: ['127.0.0.1'], ttl: 0 } }
      const s = spy(guard(['127.0.0.1/32']))
      const q0 = dns.queries
      const first = await dial('rebind.test', s.lookup, autoSelectFamily)
      assert.deepEqual(first, { ok: true, remoteAddress: '127.0.0.1', data: 'hello' })
      // One lookup, one A+AAAA pair: net dialed what lookup returned and asked nothing else.
      assert.equal(s.calls, 1)
      assert.equal(dns.queries, q0 + 2)
      assert.deepEqual(s.returned, ['127.0.0.1'])
      assert.deepEqual(accepted, ['127.0.0.1'])

      dns.table = { 'rebind.test': { a: ['169.254.169.254'], ttl: 0 } }
      const second = await dial('rebind.test', s.lookup, autoSelectFamily)
      assertRefused(second, '169.254.0.0/16')
      assert.equal(s.calls, 2)
      assert.equal(dns.queries, q0 + 4)
      assert.deepEqual(accepted, ['127.0.0.1'])
    })
  }

  it('a cached answer is reused within its TTL, and rebinding is caught once it expires', async () => {
    let now = 1_700_000_000_000
    dns.table = { 'cached.test': { a: ['127.0.0.1'], ttl: 5 } }
    const lookup = guard(['127.0.0.1/32'], undefined, () => now)
    assert.equal((await dial('cached.test', lookup)).ok, true)
    dns.table = { 'cached.test': { a: ['127.0.0.2'], ttl: 5 } } // loopback, but outside the allowed /32
    assert.equal((await dial('cached.test', lookup)).ok, true)
    now += 5000
    assertRefused(await dial('cached.test', lookup), '127.0.0.0/8')
    assert.deepEqual(accepted, ['127.0.0.1', '127.0.0.1'])
  })

  it('refuses the cloud metadata address and its IPv4-mapped and NAT64 forms', async () => {
    const cases: readonly (readonly [string, { a?: string[]; aaaa?: string[] }, string, string?])[] = [
      ['meta4.test', { a: ['169.254.169.254'] }, '169.254.0.0/16'],
      ['meta-mapped.test', { aaaa: ['::ffff:169.254.169.254'] }, '169.254.0.0/16', '::ffff:0:0/96'],
      ['meta-mapped-hex.test', { aaaa: ['::ffff:a9fe:a9fe'] }, '169.254.0.0/16', '::ffff:0:0/96'],
      ['meta-nat64.test', { aaaa: ['64:ff9b::a9fe:a9fe'] }, '169.254.0.0/16', '64:ff9b::/96'],
      ['meta6.test', { aaaa: ['fd00:ec2::254'] }, 'fc00::/7'],
      ['loop-mapped.test', { aaaa: ['::ffff:127.0.0.1'] }, '127.0.0.0/8', '::ffff:0:0/96'],
    ]
    dns.table = Object.fromEntries(cases.map(([n, rec]) => [n, rec]))
    const lookup = guard()
    for (const [name, , range, via] of cases) assertRefused(await dial(name, lookup, true), range, via)
    assert.deepEqual(accepted, [])
  })

  it('an allow for 127.0.0.1/32 also lets the IPv4-mapped form through, and net dials it', async () => {
    dns.table = { 'mapped-ok.test': { aaaa: ['::ffff:127.0.0.1'] } }
    const s = spy(guard(['127.0.0.1/32']))
    const d = await dial('mapped-ok.test', s.lookup)
    assert.equal(d.ok, true)
    assert.deepEqual(s.returned, ['::ffff:127.0.0.1'])
  })

  it('NXDOMAIN fails with KEYVALET_DNS_FAILED', async () => {
    dns.table = {}
    const d = await dial('missing.test', guard())
    assert.equal(d.ok, false)
    const err = (d as { err: unknown }).err
    assert.ok(err instanceof EgressError)
    assert.equal(err.code, 'KEYVALET_DNS_FAILED')
    assert.equal(err.detail.reason, 'nxdomain')
  })

  it('odd IP encodings reach lookup (net only skips it for canonical literals) and are refused', async () => {
    const lookup = guard(['127.0.0.0/8'])
    for (const host of ['0x7f000001', '2130706433', '0177.0.0.1', '127.1']) {
      const d = await dial(host, lookup)
      assert.equal(d.ok, false, host)
      const err = (d as { err: unknown }).err
      assert.ok(err instanceof EgressError, host)
      assert.equal(err.code, 'KEYVALET_HOST_REFUSED', host)
      assert.equal(err.detail.why, 'ip_literal_refused', host)
    }
    assert.deepEqual(accepted, [])
  })
})

describe('guarded lookup called directly', () => {
  function call(lookup: LookupFunction, host: string, options: object): Promise<{ err: NodeJS.ErrnoException | null; address: string | LookupAddress[]; family?: number }> {
    return new Promise((resolve) => lookup(host, options, (err, address, family) => resolve({ err, address, family })))
  }

  it('with all: true returns every allowed address, IPv4 first', async () => {
    dns.table = { 'all.test': { a: ['127.0.0.1', '10.0.0.1', '127.0.0.2'], aaaa: ['::1'] } }
    const r = await call(guard(['127.0.0.0/8', '::1/128']), 'all.test', { all: true })
    assert.equal(r.err, null)
    assert.deepEqual(r.address, [{ address: '127.0.0.1', family: 4 }, { address: '127.0.0.2', family: 4 }, { address: '::1', family: 6 }])
    const v6first = await call(guard(['127.0.0.0/8', '::1/128']), 'all.test', { all: true, order: 'ipv6first' })
    assert.deepEqual(v6first.address, [{ address: '::1', family: 6 }, { address: '127.0.0.1', family: 4 }, { address: '127.0.0.2', family: 4 }])
  })

  it('honours family, and says so when only the other family was allowed', async () => {
    dns.table = { 'fam.test': { a: ['127.0.0.1'], aaaa: ['::1'] } }
    const lookup = guard(['127.0.0.1/32', '::1/128'])
    assert.deepEqual(await call(lookup, 'fam.test', { family: 6 }), { err: null, address: '::1', family: 6 })
    assert.deepEqual(await call(lookup, 'fam.test', { family: 4 }), { err: null, address: '127.0.0.1', family: 4 })
    const only4 = await call(guard(['127.0.0.1/32']), 'fam.test', { family: 6 })
    assert.ok(only4.err instanceof EgressError)
    assert.equal(only4.err.code, 'KEYVALET_DNS_FAILED')
    assert.equal(only4.err.detail.reason, 'no_address_for_family')
  })

  it('checks an IP literal that reaches it instead of resolving it', async () => {
    const q0 = dns.queries
    const refused = await call(guard(), '169.254.169.254', {})
    assert.ok(refused.err instanceof EgressError)
    assert.equal(refused.err.detail.range, '169.254.0.0/16')
    assert.deepEqual(await call(guard(['127.0.0.1/32']), '127.0.0.1', {}), { err: null, address: '127.0.0.1', family: 4 })
    assert.equal(dns.queries, q0)
  })

  it('refuses malformed names without querying DNS', async () => {
    const q0 = dns.queries
    const r = await call(guard(), 'bad_name.test', {})
    assert.ok(r.err instanceof EgressError)
    assert.equal(r.err.code, 'KEYVALET_HOST_REFUSED')
    assert.equal(r.err.detail.why, 'host_invalid')
    assert.equal(dns.queries, q0)
  })

  it('fails closed when the onLookup hook throws', async () => {
    dns.table = { 'hook.test': { a: ['127.0.0.1'] } }
    const r = await call(guard(['127.0.0.1/32'], () => { throw new Error('audit down') }), 'hook.test', {})
    assert.ok(r.err instanceof EgressError)
  })

  it('caps the refused list in the detail', async () => {
    const many = Array.from({ length: 20 }, (_, i) => `10.0.0.${i + 1}`)
    dns.table = { 'many.test': { a: many } }
    const r = await call(guard(), 'many.test', {})
    assert.ok(r.err instanceof EgressError)
    assert.equal(r.err.detail.refused?.length, 8)
  })
})

describe('guarded lookup through undici', () => {
  let upstream: Upstream
  before(async () => { upstream = await startUpstream() })
  after(async () => { await upstream.close() })

  it('an Agent with connect.lookup reaches an allowed name and refuses a rebound one', async () => {
    dns.table = { 'undici.test': { a: ['127.0.0.1'], ttl: 0 } }
    const agent = new Agent({ connect: { lookup: guard(['127.0.0.1/32']) }, pipelining: 0 })
    try {
      const res = await request(`http://undici.test:${upstream.port}/hello`, { dispatcher: agent, reset: true })
      assert.equal(res.statusCode, 200)
      await res.body.text()
      assert.equal(upstream.received.at(-1)?.url, '/hello')

      dns.table = { 'undici.test': { a: ['169.254.169.254'], ttl: 0 } }
      const count = upstream.received.length
      const err = await request(`http://undici.test:${upstream.port}/again`, { dispatcher: agent, reset: true }).then(
        () => assert.fail('expected a refusal'),
        (e: unknown) => e,
      )
      const k = toEgressKeyvaletError(err)
      assert.ok(k instanceof KeyvaletError, String(err))
      assert.equal(k.code, 'upstream_address_refused')
      assert.equal(k.detail?.why, 'address_refused')
      assert.equal(k.detail?.range, '169.254.0.0/16')
      assert.equal(upstream.received.length, count)
    } finally {
      await agent.close()
    }
  })
})

describe('checkLiteral', () => {
  const policy = new AddressPolicy()
  function refusal(host: string, p = policy): Record<string, unknown> {
    try {
      checkLiteral(host, p)
    } catch (err) {
      assert.ok(err instanceof KeyvaletError)
      assert.ok(err.code === 'upstream_address_refused' || err.code === 'upstream_host_invalid', err.code)
      return err.detail ?? {}
    }
    return assert.fail(`expected ${host} to be refused`)
  }

  it('returns names and allowed literals, canonicalised', () => {
    assert.deepEqual(checkLiteral('API.GitHub.com.', policy), { kind: 'name', name: 'api.github.com' })
    assert.deepEqual(checkLiteral('8.8.8.8', policy), { kind: 'ip', address: '8.8.8.8', family: 4 })
    assert.deepEqual(checkLiteral('[2606:4700:4700:0:0:0:0:1111]', policy), { kind: 'ip', address: '2606:4700:4700::1111', family: 6 })
    assert.deepEqual(checkLiteral('127.0.0.1', new AddressPolicy({ allow: ['127.0.0.1/32'] })), { kind: 'ip', address: '127.0.0.1', family: 4 })
  })

  it('refuses literals in refused ranges, mapped forms included', () => {
    assert.deepEqual(refusal('127.0.0.1'), { why: 'address_refused', host: '127.0.0.1', range: '127.0.0.0/8', refused: [{ address: '127.0.0.1', family: 4, range: '127.0.0.0/8' }] })
    assert.equal(refusal('169.254.169.254').range, '169.254.0.0/16')
    assert.equal(refusal('[::ffff:169.254.169.254]').range, '169.254.0.0/16')
    assert.equal(refusal('[::ffff:7f00:1]').range, '127.0.0.0/8')
    assert.equal(refusal('[fd00:ec2::254]').range, 'fc00::/7')
    assert.equal(refusal('0.0.0.0').range, '0.0.0.0/8')
    assert.equal(refusal('[::]').range, '::/128')
  })

  it('refuses odd encodings and malformed names', () => {
    for (const host of ['0177.0.0.1', '0x7f000001', '2130706433', '127.1', '127.000.000.001', '[fe80::1%25eth0]']) {
      assert.equal(refusal(host, new AddressPolicy({ allow: ['0.0.0.0/0', '::/0'] })).why, 'ip_literal_refused', host)
    }
    assert.deepEqual(refusal('bad_name.test'), { why: 'host_invalid', host: 'bad_name.test', reason: 'label_invalid' })
  })
})
