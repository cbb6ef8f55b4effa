/**
 * Seeded random inputs for the fuzz tests: the same seed gives the same corpus, so a failure
 * reproduces with FUZZ_SEED=<seed> (each failure message names its seed and case).
 */

export interface Random {
  /** In [0, 1). */
  next(): number
  /** An integer in [0, n). */
  int(n: number): number
  pick<T>(items: readonly T[]): T
  chance(p: number): boolean
}

/** mulberry32: small, fast, and good enough to spread a corpus; not for anything secret. */
export function random(seed: number): Random {
  let state = seed >>> 0
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (n: number): number => Math.floor(next() * n)
  return { next, int, pick: (items) => items[int(items.length)] as (typeof items)[number], chance: (p) => next() < p }
}

/** The seed of this run: FUZZ_SEED when set (to reproduce), else a fixed one (so CI is deterministic). */
export function fuzzSeed(fallback: number): number {
  const given = Number(process.env.FUZZ_SEED)
  return Number.isInteger(given) && process.env.FUZZ_SEED !== '' ? given : fallback
}

const JSON_SEEDS = [
  '{"title":"bug"}', '{"title":"x","labels":["a"]}', '[]', '{}', '"text"', '123', 'true', 'null',
  '{"user":"alice"}', '{"metadata":{"user_id":"bob"}}', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":1}}',
  '{"title":"\\ud800"}', '{"title":"\\u0000"}', '1e400', '-0', '{"a":1,"a":2}', '{"a":{"b":[1,2,{"c":null}]}}',
  '{"title":"\u00e9\u20ac\ud83d\ude00"}', '{"n":123456789012345678901234567890}', '  {"title" : "sp" }  ',
]

const ODD_BYTES = [
  [0xef, 0xbb, 0xbf], [0xff, 0xfe], [0xfe, 0xff], [0x00], [0xc0, 0xae], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80],
  [0xc2, 0xa0], [0x0d], [0x0a], [0x09], [0x1b], [0x7f], [0x80], [0x22], [0x5c], [0x7b], [0x7d], [0x5b], [0x5d], [0x2c], [0x3a],
]

/** A request body: a JSON text, mutated 0-3 times (byte-order marks, bad UTF-8, cuts, deep nesting, noise). */
export function jsonishBody(r: Random): Buffer {
  let bytes = Buffer.from(r.pick(JSON_SEEDS), 'utf8')
  const mutations = r.int(4)
  for (let i = 0; i < mutations; i++) {
    const at = r.int(bytes.length + 1)
    switch (r.int(8)) {
      case 0: bytes = Buffer.concat([Buffer.from(r.pick(ODD_BYTES)), bytes]); break
      case 1: bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from(r.pick(ODD_BYTES)), bytes.subarray(at)]); break
      case 2: bytes = bytes.subarray(0, at); break
      case 3: bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1 + r.int(3))]); break
      case 4: {
        const depth = r.pick([10, 127, 128, 129, 1000, 20_000])
        const [open, close] = r.chance(0.5) ? ['[', ']'] : ['{"k":', '}']
        bytes = Buffer.from(`${open.repeat(depth)}${bytes.toString('latin1')}${close.repeat(depth)}`, 'latin1')
        break
      }
      case 5: bytes = Buffer.from(Array.from({ length: r.int(40) }, () => r.int(256))); break
      case 6: bytes = Buffer.concat([bytes, bytes.subarray(0, at)]); break
      default: bytes = Buffer.from(`{"title":${JSON.stringify('x'.repeat(r.int(5000)))},"k${r.int(10)}":${bytes.toString('latin1')}}`, 'latin1')
    }
  }
  return bytes
}

const PATH_PIECES = [
  'a', 'repos', 'acme', 'app', 'issues', '1', '.', '..', '...', '%2e', '%2E', '%2f', '%5c', '%25', '%3b', ';', '\\', ' ', '%20',
  '%00', '%0a', '%C2%A0', '%E2%80%8B', '%EF%BB%BF', '%EF%BC%8E', '%E2%80%A5', '%EF%BC%8F', '%c0%ae', '%ff', '%', '%4', '%zz', '%41',
  '%u002e', '::$DATA', ':', '@', '~', '!', '*', '(', ')', '+', ',', '=', '$', '&', "'", '?', '#', '//', '/', '\u00e9', '\u2215', '\t',
]

/** A request path: '/' and a few pieces, most of them meant to be refused. */
export function pathish(r: Random): string {
  let out = '/'
  const n = 1 + r.int(8)
  for (let i = 0; i < n; i++) out += r.chance(0.3) ? '/' : r.pick(PATH_PIECES)
  return out
}

const HEADER_VALUES = [
  'application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'text/plain', 'application/x-www-form-urlencoded',
  'application/vnd.api+json', 'multipart/form-data; boundary=x', '', ' ', 'gzip', 'identity', 'chunked', '0', '-1', '1e3', '00',
  'a'.repeat(300), '\u00e9t\u00e9', 'x\u0080y', 'Bearer ', 'Basic Og==', 'websocket', 'close', 'keep-alive, x-private', 'open', 'closed',
]

const HEADER_NAMES = [
  'content-type', 'content-encoding', 'accept', 'x-api-key', 'x-user-id', 'cookie', 'x-http-method-override', 'connection', 'upgrade',
  'expect', 'te', 'trailer', 'x-amz-content-sha256', 'x-amz-copy-source', 'range', 'if-none-match', 'x-custom', 'content-language',
]

/** Headers node:http keeps only the first of (RFC 9110 allows one); set-cookie is a list; the rest are joined. */
const SINGLE = new Set(['age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host', 'if-modified-since', 'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent'])

/** Header pairs folded into the object node:http gives a handler (IncomingMessage.headers). */
export function asNodeHeaders(pairs: readonly [string, string][], into: Record<string, string | string[]> = {}): Record<string, string | string[]> {
  for (const [name, value] of pairs) {
    const prior = into[name]
    if (prior === undefined) into[name] = name === 'set-cookie' ? [value] : value
    else if (Array.isArray(prior)) prior.push(value)
    else if (!SINGLE.has(name)) into[name] = `${prior}${name === 'cookie' ? '; ' : ', '}${value}`
  }
  return into
}

/** Extra request headers: common and hostile names, odd values (printable or latin-1 only, as HTTP/1.1 carries them). */
export function headerish(r: Random): [string, string][] {
  const out: [string, string][] = []
  const n = r.int(5)
  for (let i = 0; i < n; i++) {
    const name = r.chance(0.8) ? r.pick(HEADER_NAMES) : `x-${r.int(1000)}`
    const value = r.chance(0.8) ? r.pick(HEADER_VALUES) : Array.from({ length: r.int(30) }, () => String.fromCharCode(0x20 + r.int(0x5f))).join('')
    out.push([name, value])
  }
  return out
}
