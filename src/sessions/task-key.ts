import { hash, randomBytes } from 'node:crypto'
import { crc32 } from 'node:zlib'

/**
 * Task keys: `kvt_` + 43 base62 chars (32 random bytes, fixed width) + 6 base62 chars of the
 * CRC32 of those 43 chars. The prefix lets secret scanners recognise a leaked key; the checksum
 * rejects typos and junk without a database lookup. Only SHA-256 of the whole key is stored.
 */
export const TASK_KEY_PREFIX = 'kvt_'

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
/** Char code → its value in ALPHABET. */
const DIGIT = new Uint8Array(128)
for (let i = 0; i < ALPHABET.length; i++) DIGIT[ALPHABET.charCodeAt(i)] = i
const BODY_LENGTH = 43 // 62^43 > 2^256, so 32 bytes always fit
const CHECK_LENGTH = 6 // 62^6 > 2^32
const KEY_LENGTH = TASK_KEY_PREFIX.length + BODY_LENGTH + CHECK_LENGTH
const WELL_FORMED = new RegExp(`^${TASK_KEY_PREFIX}[0-9A-Za-z]{${BODY_LENGTH + CHECK_LENGTH}}$`)
/** The largest body (2^256 - 1). ALPHABET is in ASCII order, so fixed-width bodies compare as strings. */
const MAX_BODY_TEXT = toBase62((1n << 256n) - 1n, BODY_LENGTH)

/**
 * Finds candidate task keys anywhere in text (global: use with matchAll/replace, or reset
 * lastIndex). Matches need not be valid keys; confirm with hashTaskKey if that matters. It does
 * not see keys hidden by an encoding: callers decode (percent, base64 of Basic auth) first.
 */
export const TASK_KEY_PATTERN: RegExp = new RegExp(`${TASK_KEY_PREFIX}[0-9A-Za-z]{${BODY_LENGTH + CHECK_LENGTH}}`, 'g')

/** A fresh task key and the hash to store for it. The key is shown once and never stored. */
export function mintTaskKey(): { key: string; hash: Buffer } {
  const bytes = randomBytes(32)
  const body = toBase62(BigInt('0x' + bytes.toString('hex')), BODY_LENGTH)
  bytes.fill(0)
  const key = TASK_KEY_PREFIX + body + checksum(body)
  return { key, hash: sha256(key) }
}

/**
 * SHA-256 of `candidate` when it is a well-formed task key (prefix, length, alphabet, checksum),
 * else undefined. Well-formed says nothing about whether the key exists.
 */
export function hashTaskKey(candidate: string): Buffer | undefined {
  if (typeof candidate !== 'string' || candidate.length !== KEY_LENGTH || !WELL_FORMED.test(candidate)) {
    return undefined
  }
  const body = candidate.slice(TASK_KEY_PREFIX.length, TASK_KEY_PREFIX.length + BODY_LENGTH)
  if (checkValue(candidate, TASK_KEY_PREFIX.length + BODY_LENGTH) !== crc32(body) || body > MAX_BODY_TEXT) return undefined
  return sha256(candidate)
}

/** The number the CHECK_LENGTH base62 digits from `at` spell (the key is well formed: every digit is in ALPHABET). */
function checkValue(key: string, at: number): number {
  let v = 0
  for (let i = at; i < at + CHECK_LENGTH; i++) v = v * 62 + DIGIT[key.charCodeAt(i)]!
  return v
}

function checksum(body: string): string {
  let out = ''
  for (let v = crc32(body); v > 0; v = Math.floor(v / 62)) out = ALPHABET[v % 62] + out
  return out.padStart(CHECK_LENGTH, ALPHABET[0])
}

function sha256(text: string): Buffer {
  // One-shot hash: no Hash object per request (about half the cost on the request path).
  return hash('sha256', text, 'buffer')
}

/** Fixed-width, most significant digit first, left-padded with '0'. */
function toBase62(value: bigint, width: number): string {
  let out = ''
  for (let v = value; v > 0n; v /= 62n) out = ALPHABET[Number(v % 62n)] + out
  return out.padStart(width, ALPHABET[0])
}
