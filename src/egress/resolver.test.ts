import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startDnsServer, type DnsServer } from '../../test/helpers/dns-server.ts'
import { EgressError } from './egress-error.ts'
import { Resolver } from './resolver.ts'

let dns: DnsServer
before(async () => {
  dns = await startDnsServer()
})
after(async () => {
  await dns.close()
})

function fakeClock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start
  return { now: () => t, advance: (ms) => { t += ms } }
}

async function rejectsWith(p: Promise<unknown>, code: string, reason: string): Promise<EgressError> {
  const err = await p.then(() => assert.fail('expected a rejection'), (e: unknown) => e)
  assert.ok(err instanceof EgressError, String(err))
  assert.equal(err.code, code)
  assert.equal(err.detail.why, 'dns_failed')
  assert.equal(err.detail.reason, reason)
  return err
}

describe('Resolver against a DNS server on loopback', () => {
  it('returns A answers first, then AAAA, each in the server order', async () => {
    dns.table = { 'both.test': { a: ['203.0.113.1', '203.0.113.2'], aaaa: ['2001:db8::1'] } }
    const r = new Resolver({ servers: [dns.address], timeoutMs: 1000 })
    assert.deepEqual(await r.resolve('both.test'), [
      { address: '203.0.113.1', family: 4 },
      { address: '203.0.113.2', family: 4 },
      { address: '2001:db8::1', family: 6 },
    ])
  })

  it('resolves a name with only A or only AAAA records', async () => {
    dns.table = { 'v4.test': { a: ['192.0.2.7'] }, 'v6.test': { aaaa: ['2001:db8::7'] } }
    const r = new Resolver({ servers: [dns.address], timeoutMs: 1000 })
    assert.deepEqual(await r.resolve('v4.test'), [{ address: '192.0.2.7', family: 4 }])
    assert.deepEqual(await r.resolve('v6.test'), [{ address: '2001:db8::7', family: 6 }])
  })

  it('queries the absolute name, for both families, case-insensitively cached', async () => {
    dns.table = { 'case.test': { a: ['192.0.2.8'] } }
    const r = new Resolver({ servers: [dns.address], timeoutMs: 1000 })
    const before = dns.log.length
    await r.resolve('case.test')
    await r.resolve('CASE.test')
    assert.deepEqual(dns.log.slice(before), ['case.test A', 'case.test AAAA'])
  })

  it('NXDOMAIN rejects with KEYVALET_DNS_FAILED / nxdomain', async () => {
    dns.table = {}
    const r = new Resolver({ servers: [dns.address], timeoutMs: 1000 })
    const err = await rejectsWith(r.resolve('nope.test'), 'KEYVALET_DNS_FAILED', 'nxdomain')
    assert.equal(err.detail.dnsCode, 'ENOTFOUND')
    assert.equal(err.detail.host, 'nope.test')
    assert.equal(err.toKeyvaletError().code, 'upstream_dns_failed')
    assert.equal(err.toKeyvaletError().status, 502)
  })

  it('a known name without addresses rejects with no_data', async () => {
    dns.table = { 'empty.test': {} }
    const r = new Resolver({ servers: [dns.address], timeoutMs: 1000 })
    await rejectsWith(r.resolve('empty.test'), 'KEYVALET_DNS_FAILED', 'no_data')
  })

  it('caches a positive answer for its TTL, then asks again', async () => {
    dns.table = { 'ttl.test': { a: ['192.0.2.1'], ttl: 30 } }
    const clock = fakeClock()
    const r = new Resolver({ servers: [dns.address], timeoutMs: 1000, clock: clock.now })
    const q0 = dns.queries
    assert.deepEqual(await r.resolve('ttl.test'), [{ address: '192.0.2.1', family: 4 }])
    assert.equal(dns.queries, q0 + 2) // A + AAAA
    dns.table = { 'ttl.test': { a: ['192.0.2.2'], ttl: 30 } }
    clock.advance(29_999)
    assert.deepEqual(await r.resolve('ttl.test'), [{ address: '192.0.2.1', family: 4 }])
    assert.equal(dns.queries, q0 + 2)
    clock.advance(1)
    assert.deepEqual(await r.resolve('ttl.test'), [{ address: '192.0.2.2', family: 4 }])
    assert.equal(dns.queries, q0 + 4)
  })

  it('never caches a TTL of 0, nor a negative answer', async () => {
    dns.table = { 'zero.test': { a: ['192.0.2.3'], ttl: 0 } }
    const r = new Resolver({ servers: [dns.address], timeoutMs: 1000, clock: fakeClock().now })
    const q0 = dns.queries
    await r.resolve('zero.test')
    await r.resolve('zero.test')
    assert.equal(dns.queries, q0 + 4)
    dns.table = {}
    await rejectsWith(r.resolve('gone.test'), 'KEYVALET_DNS_FAILED', 'nxdomain')
    dns.table = { 'gone.test': { a: ['192.0.2.4'] } }
    assert.deepEqual(await r.resolve('gone.test'), [{ address: '192.0.2.4', family: 4 }])
    assert.equal(r.cacheEntries, 1)
  })

  it('shortens long TTLs to maxTtlSeconds', async () => {
    dns.table = { 'long.test': { a: ['192.0.2.5'], ttl: 86_400 } }
    const clock = fakeClock()
    const r = new Resolver({ servers: [dns.address], timeoutMs: 1000, clock: clock.now, maxTtlSeconds: 10 })
    await r.resolve('long.test')
    dns.table = { 'long.test': { a: ['192.0.2.6'], ttl: 86_400 } }
    clock.advance(10_000)
    assert.deepEqual(await r.resolve('long.test'), [{ address: '192.0.2.6', family: 4 }])
  })

  it('keeps the cache bounded, evicting the least recently used entry', async () => {
    dns.table = { 'a.test': { a: ['192.0.2.11'] }, 'b.test': { a: ['192.0.2.12'] }, 'c.test': { a: ['192.0.2.13'] } }
    const r = new Resolver({ servers: [dns.address], timeoutMs: 1000, clock: fakeClock().now, cacheSize: 2 })
    await r.resolve('a.test')
    await r.resolve('b.test')
    await r.resolve('a.test') // a is now the most recent
    await r.resolve('c.test') // evicts b
    assert.equal(r.cacheEntries, 2)
    const q0 = dns.queries
    await r.resolve('a.test')
    await r.resolve('c.test')
    assert.equal(dns.queries, q0)
    await r.resolve('b.test')
    assert.equal(dns.queries, q0 + 2)
    assert.equal(r.cacheEntries, 2)
  })

  it('shares one pair of queries between concurrent resolves of one name', async () => {
    dns.table = { 'shared.test': { a: ['192.0.2.20'], ttl: 0 } }
    const r = new Resolver({ servers: [dns.address], timeoutMs: 1000 })
    const q0 = dns.queries
    const all = await Promise.all([r.resolve('shared.test'), r.resolve('shared.test'), r.resolve('shared.test')])
    assert.equal(dns.queries, q0 + 2)
    for (const a of all) assert.deepEqual(a, [{ address: '192.0.2.20', family: 4 }])
  })

  it('times out, bounded, when the server drops every query', async () => {
    dns.table = { 'slow.test': { a: ['192.0.2.30'] } }
    dns.drop = true
    try {
      const r = new Resolver({ servers: [dns.address], timeoutMs: 200 })
      const q0 = dns.queries
      const started = Date.now()
      const err = await rejectsWith(r.resolve('slow.test'), 'KEYVALET_DNS_FAILED', 'timeout')
      const elapsed = Date.now() - started
      assert.ok(elapsed >= 150 && elapsed < 1500, `elapsed ${elapsed} ms`)
      assert.ok(dns.queries > q0)
      assert.equal(err.detail.dnsCode, 'ETIMEOUT')
      assert.equal(r.cacheEntries, 0)
    } finally {
      dns.drop = false
    }
  })

  it('fails, bounded, when the server is not there', async () => {
    const gone = await startDnsServer()
    const address = gone.address
    await gone.close()
    const r = new Resolver({ servers: [address], timeoutMs: 300 })
    const started = Date.now()
    const err = await r.resolve('x.test').then(() => assert.fail('expected a rejection'), (e: unknown) => e)
    assert.ok(err instanceof EgressError && err.code === 'KEYVALET_DNS_FAILED')
    assert.ok(Date.now() - started < 2000)
  })

  it('validates its options', () => {
    assert.throws(() => new Resolver({ servers: [] }), /must not be empty/)
    assert.throws(() => new Resolver({ servers: ['not-an-ip'] }))
    assert.throws(() => new Resolver({ timeoutMs: 0 }), /positive/)
    assert.throws(() => new Resolver({ timeoutMs: Number.NaN }), /positive/)
  })
})
