import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { connect, createServer, type PeerCertificate, type Server } from 'node:tls'
import { createCa } from './certificate.ts'
import { InvalidHostError } from './host.ts'
import { LeafCache } from './leaf-cache.ts'

const HOUR = 3_600_000
const start = Date.now()
const ca = createCa({ commonName: 'keyvalet test CA', notBefore: new Date(start - HOUR), notAfter: new Date(start + 365 * 24 * HOUR) })
const untrusted = createCa({ commonName: 'keyvalet test CA', notBefore: new Date(start - HOUR), notAfter: new Date(start + 24 * HOUR) })

/** A TLS server on loopback whose every handshake is answered from `cache` through SNICallback. */
function serve(cache: LeafCache): Promise<Server> {
  const server = createServer({
    SNICallback: (servername, done) => {
      try {
        done(null, cache.secureContextFor(servername))
      } catch (err) {
        done(err as Error)
      }
    },
  }, (socket) => socket.end('hello\n'))
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

type Handshake = { authorized: true; cert: PeerCertificate } | { authorized: false; error: string }

function handshake(server: Server, servername: string, caPem: string): Promise<Handshake> {
  const { port } = server.address() as AddressInfo
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, servername, ca: caPem })
    socket.once('secureConnect', () => {
      resolve({ authorized: socket.authorized as true, cert: socket.getPeerCertificate() })
      socket.destroy()
    })
    socket.once('error', (err: NodeJS.ErrnoException) => resolve({ authorized: false, error: err.code ?? err.message }))
  })
}

describe('LeafCache over a real TLS handshake', () => {
  const cache = new LeafCache({ ca })
  let server: Server
  before(async () => {
    server = await serve(cache)
  })
  after(() => server.close())

  it('presents a leaf that a client trusting the CA accepts for the SNI name', async () => {
    const result = await handshake(server, 'api.example.test', ca.certPem)
    assert.equal(result.authorized, true)
    assert.ok(result.authorized)
    assert.equal(result.cert.subjectaltname, 'DNS:api.example.test')
    assert.equal(result.cert.issuer.CN, 'keyvalet test CA')
  })

  it('fails the handshake for a client that does not trust the CA', async () => {
    const result = await handshake(server, 'api.example.test', untrusted.certPem)
    assert.deepEqual(result, { authorized: false, error: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' })
  })

  it('gives a different SNI a different leaf, and the same SNI the same one', async () => {
    const [a, b, again] = await Promise.all([
      handshake(server, 'api.example.test', ca.certPem),
      handshake(server, 'uploads.example.test', ca.certPem),
      handshake(server, 'API.EXAMPLE.TEST', ca.certPem),
    ])
    assert.ok(a.authorized && b.authorized && again.authorized)
    assert.equal(b.cert.subjectaltname, 'DNS:uploads.example.test')
    assert.notEqual(a.cert.fingerprint256, b.cert.fingerprint256)
    assert.equal(a.cert.fingerprint256, again.cert.fingerprint256)
  })

  it('fails the handshake when the SNI is not a host it will mint for', async () => {
    const result = await handshake(server, 'under_score.example.test', ca.certPem)
    assert.equal(result.authorized, false)
  })

  it('satisfies openssl s_client verifying the chain and the name', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'keyvalet-leafcache-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    writeFileSync(join(dir, 'ca.pem'), ca.certPem)
    const { port } = server.address() as AddressInfo
    const output = await new Promise<string>((resolve) => {
      const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'api.example.test',
        '-verify_hostname', 'api.example.test', '-verify_return_error', '-ign_eof', '-CAfile', join(dir, 'ca.pem')],
      (_err, stdout, stderr) => resolve(`${stdout}${stderr}`))
      child.stdin?.end()
    })
    assert.match(output, /Verify return code: 0 \(ok\)/)
    assert.match(output, /hello/)
  })
})

describe('LeafCache', () => {
  it('returns the same context for a repeated host, minting once', () => {
    const cache = new LeafCache({ ca })
    const first = cache.secureContextFor('api.example.test')
    assert.equal(cache.secureContextFor('api.example.test'), first)
    assert.equal(cache.secureContextFor('Api.Example.Test'), first)
    assert.equal(cache.secureContextFor('::1'), cache.secureContextFor('0:0:0:0:0:0:0:1'))
    assert.deepEqual([cache.size, cache.minted], [2, 2])
  })

  it('keeps at most maxEntries hosts, dropping the least recently used', () => {
    const cache = new LeafCache({ ca, maxEntries: 2 })
    const a = cache.secureContextFor('a.test')
    const b = cache.secureContextFor('b.test')
    assert.equal(cache.secureContextFor('a.test'), a) // a is now the most recently used
    cache.secureContextFor('c.test') // evicts b
    assert.equal(cache.size, 2)
    assert.equal(cache.secureContextFor('a.test'), a)
    assert.notEqual(cache.secureContextFor('b.test'), b, 'b was evicted and is minted again')
    assert.equal(cache.minted, 4)
    assert.equal(cache.size, 2)
  })

  it('re-mints within the renewal margin of expiry, and back-dates leaves', () => {
    let now = start
    const cache = new LeafCache({ ca, clock: () => now, ttlMs: 24 * HOUR, renewMarginMs: HOUR, backdateMs: 5 * 60_000 })
    const first = cache.secureContextFor('a.test')
    now = start + 22 * HOUR
    assert.equal(cache.secureContextFor('a.test'), first)
    now = start + 23 * HOUR + 1000
    const renewed = cache.secureContextFor('a.test')
    assert.notEqual(renewed, first)
    assert.equal(cache.secureContextFor('a.test'), renewed)
    assert.equal(cache.minted, 2)
  })

  it('clamps leaves to a CA near its end, renews without minting on every call, refuses once it has expired', async (t) => {
    let now = start
    const shortCa = createCa({ commonName: 'short CA', notBefore: new Date(start - HOUR), notAfter: new Date(start + 10 * 60_000) })
    const cache = new LeafCache({ ca: shortCa, clock: () => now })
    const server = await serve(cache)
    t.after(() => server.close())
    const result = await handshake(server, 'a.test', shortCa.certPem)
    assert.ok(result.authorized)
    assert.equal(new Date(result.cert.valid_to).getTime(), new X509Certificate(shortCa.certPem).validToDate.getTime())
    assert.equal(new Date(result.cert.valid_from).getTime(), Math.floor((start - 5 * 60_000) / 1000) * 1000)
    for (let i = 0; i < 10; i++) cache.secureContextFor('a.test')
    assert.equal(cache.minted, 1)
    now = start + 11 * 60_000
    assert.throws(() => cache.secureContextFor('a.test'), RangeError)
  })

  it('rejects bad hosts with InvalidHostError and caches nothing for them', () => {
    const cache = new LeafCache({ ca })
    for (const host of ['*.example.test', 'a b.test', 'a\0.test', '127.1', 'example.test.']) {
      assert.throws(() => cache.secureContextFor(host), InvalidHostError, host)
    }
    assert.deepEqual([cache.size, cache.minted], [0, 0])
  })

  it('measures a new host (mint + secure context) and a cached host', (t) => {
    const cache = new LeafCache({ ca, maxEntries: 10_000 })
    cache.secureContextFor('warm.test')
    const time = (n: number, fn: (i: number) => void) => {
      const begin = process.hrtime.bigint()
      for (let i = 0; i < n; i++) fn(i)
      return Number(process.hrtime.bigint() - begin) / 1000 / n
    }
    const miss = time(300, (i) => cache.secureContextFor(`h${i}.test`))
    const hit = time(10_000, (i) => cache.secureContextFor(`h${i % 300}.test`))
    t.diagnostic(`LeafCache.secureContextFor: new host ${miss.toFixed(0)} µs, cached host ${hit.toFixed(1)} µs`)
  })
})
