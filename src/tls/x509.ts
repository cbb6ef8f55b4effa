/**
 * The X.509 v3 building blocks (RFC 5280) that createCa and issueLeaf assemble: names, extensions,
 * key identifiers, validity, and the signed certificate itself (ECDSA P-256 with SHA-256).
 */
import { createHash, randomBytes, sign, type KeyObject } from 'node:crypto'
import * as der from './der.ts'

export const OID = {
  commonName: '2.5.4.3',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
}
export const KEY_USAGE_BIT = { digitalSignature: 0, keyCertSign: 5, cRLSign: 6 }
/** RFC 5758 §3.2: the parameters of ecdsa-with-SHA256 are absent. */
const SIGNATURE_ALGORITHM = der.sequence(der.oid(OID.ecdsaWithSha256))

/** Name with one RDN holding CN (UTF8String, as RFC 5280 §4.1.2.6 asks of new certificates). */
export function nameDer(commonName: string): Buffer {
  return der.sequence(der.set(der.sequence(der.oid(OID.commonName), der.utf8String(commonName))))
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits (the uncompressed P-256 point). */
export function keyIdentifier(publicKey: KeyObject): Buffer {
  const jwk = publicKey.export({ format: 'jwk' })
  if (jwk.crv !== 'P-256' || !jwk.x || !jwk.y) throw new TypeError('key identifier: a P-256 key is required')
  const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')])
  return createHash('sha1').update(point).digest()
}

export function extension(id: string, critical: boolean, value: Buffer): Buffer {
  // DER omits a BOOLEAN that equals its DEFAULT (critical DEFAULT FALSE).
  return der.sequence(der.oid(id), ...(critical ? [der.boolean(true)] : []), der.octetString(value))
}

/** Whole seconds (what the encoding can carry), and a non-empty interval. */
export function validity(notBefore: Date, notAfter: Date): { notBefore: Date; notAfter: Date } {
  const from = Math.floor(notBefore.getTime() / 1000) * 1000
  const to = Math.floor(notAfter.getTime() / 1000) * 1000
  if (!(from < to)) throw new RangeError('certificate validity is empty (after clamping to the CA, for a leaf)')
  return { notBefore: new Date(from), notAfter: new Date(to) }
}

export interface CertificateFields {
  issuer: Buffer
  subject: Buffer
  notBefore: Date
  notAfter: Date
  spki: Buffer
  extensions: Buffer[]
  signingKey: KeyObject
}

export function signCertificate(fields: CertificateFields): string {
  const tbs = der.sequence(
    der.explicit(0, der.integer(2)), // v3
    der.integer(randomSerial()),
    SIGNATURE_ALGORITHM,
    fields.issuer,
    der.sequence(der.time(fields.notBefore), der.time(fields.notAfter)),
    fields.subject,
    fields.spki,
    der.explicit(3, der.sequence(...fields.extensions)),
  )
  const signature = sign('sha256', tbs, { key: fields.signingKey, dsaEncoding: 'der' })
  const body = der.sequence(tbs, SIGNATURE_ALGORITHM, der.bitString(signature)).toString('base64')
  return `-----BEGIN CERTIFICATE-----\n${body.replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`
}

/** 128 random bits as a positive INTEGER (the writer adds a 0x00 if the top bit is set); never 0. */
function randomSerial(): Buffer {
  const serial = randomBytes(16)
  if (serial.every((b) => b === 0)) serial[15] = 1
  return serial
}
