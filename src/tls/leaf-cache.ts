/**
 * Leaf certificates per intercepted host, minted on first use and kept as ready TLS contexts, for
 * an SNICallback (or the CONNECT authority when a client sends no SNI, as for IP literals).
 *
 * Minting is synchronous (about a millisecond), so two concurrent handshakes for one new host can
 * never mint twice. All leaves of one cache share one P-256 key, generated in memory when the
 * cache is built: a fresh key per leaf would cost most of the minting time and buys nothing, since
 * every leaf key lives in this process beside the CA key anyway. Key material is never logged.
 */
import { generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto'
import { createSecureContext, type SecureContext } from 'node:tls'
import { issueLeaf, type CaMaterial } from './certificate.ts'
import { parseLeafHost } from './host.ts'

export interface LeafCacheOptions {
  ca: CaMaterial
  /** Milliseconds since the epoch; injectable for tests. */
  clock?: () => number
  /** Leaf validity from now (clamped to the CA's). Default 24 h. */
  ttlMs?: number
  /** Most hosts kept; the least recently used is dropped beyond this. Default 1000. */
  maxEntries?: number
  /** Re-mint a leaf this long before it expires. Default 1 h. */
  renewMarginMs?: number
  /** Leaves start this far in the past, for clients whose clocks run behind. Default 5 min. */
  backdateMs?: number
}

interface Entry {
  context: SecureContext
  renewAt: number
}

const HOUR_MS = 3_600_000

export class LeafCache {
  readonly #ca: CaMaterial
  readonly #clock: () => number
  readonly #ttlMs: number
  readonly #maxEntries: number
  readonly #renewMarginMs: number
  readonly #backdateMs: number
  readonly #caNotAfter: number
  readonly #key: KeyObject = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
  /** Map iteration order is insertion order: re-inserting on every hit makes the first key the LRU. */
  readonly #entries = new Map<string, Entry>()
  #minted = 0

  constructor(options: LeafCacheOptions) {
    this.#ca = { certPem: options.ca.certPem, keyPem: options.ca.keyPem }
    this.#clock = options.clock ?? Date.now
    this.#ttlMs = options.ttlMs ?? 24 * HOUR_MS
    this.#maxEntries = options.maxEntries ?? 1000
    this.#renewMarginMs = options.renewMarginMs ?? HOUR_MS
    this.#backdateMs = options.backdateMs ?? 5 * 60_000
    this.#caNotAfter = new X509Certificate(this.#ca.certPem).validToDate.getTime()
    if (!(this.#maxEntries >= 1) || !(this.#ttlMs > 0)) throw new RangeError('LeafCache: maxEntries ≥ 1 and ttlMs > 0 required')
  }

  /** Number of hosts currently cached. */
  get size(): number {
    return this.#entries.size
  }

  /** Number of leaves minted since construction (first uses and renewals). */
  get minted(): number {
    return this.#minted
  }

  /**
   * The TLS context presenting a leaf for `host`. Hosts are canonicalised first (`API.Example.test`
   * and `api.example.test` share one leaf); throws InvalidHostError for anything parseLeafHost refuses.
   */
  secureContextFor(host: string): SecureContext {
    const parsed = parseLeafHost(host)
    const canonical = parsed.kind === 'dns' ? parsed.name : parsed.text
    const now = this.#clock()
    const hit = this.#entries.get(canonical)
    this.#entries.delete(canonical)
    if (hit && now < hit.renewAt) {
      this.#entries.set(canonical, hit)
      return hit.context
    }
    const entry = this.#mint(canonical, now)
    this.#entries.set(canonical, entry)
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next()
      if (oldest.done) break
      this.#entries.delete(oldest.value)
    }
    return entry.context
  }

  #mint(host: string, now: number): Entry {
    // Clamping would otherwise yield a leaf that is already expired, back-dated into the CA's life.
    if (now >= this.#caNotAfter) throw new RangeError('LeafCache: the CA certificate has expired')
    const leaf = issueLeaf({
      ca: this.#ca,
      host,
      notBefore: new Date(now - this.#backdateMs),
      notAfter: new Date(now + this.#ttlMs),
      key: this.#key,
    })
    this.#minted++
    // The leaf alone: clients are given the CA as a trust anchor, so sending it too buys nothing.
    const context = createSecureContext({ cert: leaf.certPem, key: leaf.keyPem })
    // A leaf may end sooner than asked (clamped to the CA). Renew at the margin, or halfway through
    // what remains if that is sooner, so a CA near its end does not cause a mint on every call.
    const end = leaf.notAfter.getTime()
    return { context, renewAt: end - Math.min(this.#renewMarginMs, (end - now) / 2) }
  }
}
