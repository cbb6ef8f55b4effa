import { createCipheriv, createDecipheriv, randomBytes, type KeyObject } from 'node:crypto'

/**
 * The binary envelope of one vault secret, format version 1:
 *
 *   [0]      version (0x01)
 *   [1..13)  IV of the wrapped data key            (12 bytes)
 *   [13..29) GCM tag of the wrapped data key       (16 bytes)
 *   [29..61) data key encrypted under the KEK      (32 bytes)
 *   [61..73) IV of the value                       (12 bytes)
 *   [73..89) GCM tag of the value                  (16 bytes)
 *   [89..)   value encrypted under the data key    (≥ 1 byte)
 *
 * Both AES-256-GCM operations use the same AAD (the record binding, e.g. the secret's name), so an
 * envelope moved to another record fails authentication.
 */
export const ENVELOPE_V1 = 0x01
const IV = 12
const TAG = 16
const DATA_KEY = 32
const HEADER = 1 + IV + TAG + DATA_KEY + IV + TAG

/** Thrown when an envelope is malformed or fails authentication. Carries no key material. */
export class EnvelopeError extends Error {
  override readonly name = 'EnvelopeError'
}

/** Seals `value` under a fresh data key, itself sealed under `kek`. */
export function sealEnvelope(kek: KeyObject, aad: Buffer, value: Buffer): Buffer {
  const dataKey = randomBytes(DATA_KEY)
  try {
    const wrapped = gcmEncrypt(kek, aad, dataKey)
    const sealed = gcmEncrypt(dataKey, aad, value)
    return Buffer.concat([Buffer.of(ENVELOPE_V1), wrapped.iv, wrapped.tag, wrapped.data, sealed.iv, sealed.tag, sealed.data])
  } finally {
    dataKey.fill(0)
  }
}

/** Opens an envelope made by sealEnvelope with the same `kek` and `aad`; throws EnvelopeError otherwise. */
export function openEnvelope(kek: KeyObject, aad: Buffer, envelope: Buffer): Buffer {
  if (envelope.length === 0 || envelope[0] !== ENVELOPE_V1) {
    throw new EnvelopeError(`unknown envelope format version ${envelope[0] ?? 'none'}`)
  }
  if (envelope.length <= HEADER) throw new EnvelopeError('envelope is truncated')
  let at = 1
  const take = (n: number) => envelope.subarray(at, (at += n))
  const wrapIv = take(IV)
  const wrapTag = take(TAG)
  const wrappedKey = take(DATA_KEY)
  const valueIv = take(IV)
  const valueTag = take(TAG)
  const ciphertext = envelope.subarray(at)
  const dataKey = gcmDecrypt(kek, aad, wrapIv, wrapTag, wrappedKey, 'data key')
  try {
    return gcmDecrypt(dataKey, aad, valueIv, valueTag, ciphertext, 'value')
  } finally {
    dataKey.fill(0)
  }
}

/**
 * The same envelope with its data key re-wrapped under `toKek` (fresh IV): the value's ciphertext
 * is kept byte for byte, so a master-key rotation never decrypts a value. Throws EnvelopeError
 * when `fromKek` does not open the data key.
 */
export function rewrapEnvelope(fromKek: KeyObject, toKek: KeyObject, aad: Buffer, envelope: Buffer): Buffer {
  if (envelope.length === 0 || envelope[0] !== ENVELOPE_V1) {
    throw new EnvelopeError(`unknown envelope format version ${envelope[0] ?? 'none'}`)
  }
  if (envelope.length <= HEADER) throw new EnvelopeError('envelope is truncated')
  const wrapIv = envelope.subarray(1, 1 + IV)
  const wrapTag = envelope.subarray(1 + IV, 1 + IV + TAG)
  const wrappedKey = envelope.subarray(1 + IV + TAG, 1 + IV + TAG + DATA_KEY)
  const dataKey = gcmDecrypt(fromKek, aad, wrapIv, wrapTag, wrappedKey, 'data key')
  try {
    const wrapped = gcmEncrypt(toKek, aad, dataKey)
    return Buffer.concat([Buffer.of(ENVELOPE_V1), wrapped.iv, wrapped.tag, wrapped.data, envelope.subarray(1 + IV + TAG + DATA_KEY)])
  } finally {
    dataKey.fill(0)
  }
}

function gcmEncrypt(key: KeyObject | Buffer, aad: Buffer, plaintext: Buffer): { iv: Buffer; tag: Buffer; data: Buffer } {
  const iv = randomBytes(IV)
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG })
  cipher.setAAD(aad)
  const data = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return { iv, tag: cipher.getAuthTag(), data }
}

function gcmDecrypt(key: KeyObject | Buffer, aad: Buffer, iv: Buffer, tag: Buffer, data: Buffer, what: string): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG })
  decipher.setAAD(aad)
  decipher.setAuthTag(tag)
  const out = decipher.update(data)
  try {
    return Buffer.concat([out, decipher.final()]) // concat copies, so `out` can be zeroed
  } catch (err) {
    throw new EnvelopeError(`${what} failed authentication`, { cause: err })
  } finally {
    out.fill(0) // when authentication failed this is unauthenticated plaintext: never let it escape
  }
}
