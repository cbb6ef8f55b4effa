/**
 * keyvalet's interception CA and the per-host leaf certificates it signs: X.509 v3, ECDSA P-256
 * with SHA-256, assembled from ./x509.ts and signed with node:crypto.
 *
 * Nothing here parses ASN.1. What a leaf needs from its CA (subject Name, key identifier, validity)
 * is re-derived from values node:crypto already exposes, then checked byte-for-byte against the
 * CA certificate, so a CA that keyvalet did not create with createCa is refused.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto'
import * as der from './der.ts'
import { parseLeafHost } from './host.ts'
import { extension, KEY_USAGE_BIT, keyIdentifier, nameDer, OID, signCertificate, validity } from './x509.ts'

/** A certificate and its PKCS#8 private key, both PEM; for a CA, what is stored. */
export interface CaMaterial {
  certPem: string
  keyPem: string
}

/** A leaf, with the validity it actually got (after clamping to the CA and to whole seconds). */
export interface IssuedLeaf extends CaMaterial {
  notBefore: Date
  notAfter: Date
}

export interface CreateCaOptions {
  /** Letters, digits, spaces and `._()-`, at most 64 characters. */
  commonName: string
  notBefore: Date
  notAfter: Date
}

export interface IssueLeafOptions {
  ca: CaMaterial
  /** One DNS name or IP literal; see parseLeafHost for what is accepted. */
  host: string
  /** Clamped to the CA's validity. */
  notBefore: Date
  notAfter: Date
  /** A P-256 private key to reuse across leaves (minting is then much cheaper); fresh if omitted. */
  key?: KeyObject
}

/** Narrow enough that `X509Certificate.subject` reads back as exactly `CN=<name>`, unescaped. */
const COMMON_NAME = /^[A-Za-z0-9._()-]+( [A-Za-z0-9._()-]+)*$/

/**
 * A self-signed root for interception: fresh P-256 key, CA:TRUE with pathLen 0 (it signs leaves,
 * never other CAs), keyCertSign + cRLSign, subject and authority key identifiers. The caller stores
 * `keyPem` (encrypted, in the vault); nothing here writes it anywhere.
 */
export function createCa(options: CreateCaOptions): CaMaterial {
  const { commonName } = options
  if (!COMMON_NAME.test(commonName) || commonName.length > 64) {
    throw new RangeError('CA commonName: use letters, digits, spaces and ._()- (at most 64)')
  }
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const name = nameDer(commonName)
  const keyId = keyIdentifier(publicKey)
  const certPem = signCertificate({
    issuer: name,
    subject: name,
    ...validity(options.notBefore, options.notAfter),
    spki: publicKey.export({ type: 'spki', format: 'der' }),
    extensions: [
      extension(OID.basicConstraints, true, der.sequence(der.boolean(true), der.integer(0))),
      extension(OID.keyUsage, true, der.namedBits([KEY_USAGE_BIT.keyCertSign, KEY_USAGE_BIT.cRLSign])),
      extension(OID.subjectKeyIdentifier, false, der.octetString(keyId)),
      extension(OID.authorityKeyIdentifier, false, der.sequence(der.implicit(0, keyId))),
    ],
    signingKey: privateKey,
  })
  return { certPem, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() }
}

/**
 * A server leaf for exactly one host (DNS SAN, or IP SAN for an IP literal), signed by `ca`, with
 * serverAuth only, digitalSignature only, CA:FALSE, a random 128-bit serial, and validity clamped to
 * the CA's. Throws InvalidHostError for a host parseLeafHost refuses, RangeError for an empty
 * validity (e.g. an expired CA), Error for a CA that createCa did not make.
 */
export function issueLeaf(options: IssueLeafOptions): IssuedLeaf {
  const ca = loadCa(options.ca)
  const host = parseLeafHost(options.host)
  const key = options.key ?? generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
  const { spki, keyId, keyPem } = leafKey(key)
  const { notBefore, notAfter } = validity(
    new Date(Math.max(options.notBefore.getTime(), ca.validFrom)),
    new Date(Math.min(options.notAfter.getTime(), ca.validTo)),
  )
  const shown = host.kind === 'dns' ? host.name : host.text
  // CN is bounded to 64 characters (RFC 5280 ub-common-name); past that the subject is empty and
  // the SAN, which is what clients match anyway, must be critical (RFC 5280 §4.2.1.6).
  const subject = shown.length <= 64 ? nameDer(shown) : der.sequence()
  const generalName = host.kind === 'dns' ? der.implicit(2, Buffer.from(host.name, 'ascii')) : der.implicit(7, host.bytes)
  const certPem = signCertificate({
    issuer: ca.subject,
    subject,
    notBefore,
    notAfter,
    spki,
    extensions: [
      extension(OID.basicConstraints, true, der.sequence()),
      extension(OID.keyUsage, true, der.namedBits([KEY_USAGE_BIT.digitalSignature])),
      extension(OID.extKeyUsage, false, der.sequence(der.oid(OID.serverAuth))),
      extension(OID.subjectAltName, shown.length > 64, der.sequence(generalName)),
      extension(OID.subjectKeyIdentifier, false, der.octetString(keyId)),
      extension(OID.authorityKeyIdentifier, false, der.sequence(der.implicit(0, ca.keyId))),
    ],
    signingKey: ca.key,
  })
  return { certPem, keyPem, notBefore, notAfter }
}

interface LoadedCa {
  material: CaMaterial
  key: KeyObject
  subject: Buffer
  keyId: Buffer
  validFrom: number
  validTo: number
}

const loadedCas = new WeakMap<CaMaterial, LoadedCa>()

/** Parses and checks a CA once per material object (re-checked if its PEM strings change). */
function loadCa(material: CaMaterial): LoadedCa {
  const hit = loadedCas.get(material)
  if (hit && hit.material.certPem === material.certPem && hit.material.keyPem === material.keyPem) return hit
  const cert = new X509Certificate(material.certPem)
  const key = createPrivateKey(material.keyPem)
  if (!cert.ca || !cert.checkPrivateKey(key)) throw new Error('CA: not a CA certificate, or key does not match')
  const commonName = /^CN=(.*)$/.exec(cert.subject)?.[1]
  if (commonName === undefined || !COMMON_NAME.test(commonName)) throw new Error('CA: subject is not one createCa writes')
  const subject = nameDer(commonName)
  const keyId = keyIdentifier(cert.publicKey)
  // Our re-encodings must be the very bytes in the certificate, or chains would not build.
  if (!cert.raw.includes(subject) || !cert.raw.includes(der.octetString(keyId))) throw new Error('CA: not created by createCa')
  const loaded = {
    material: { ...material },
    key,
    subject,
    keyId,
    validFrom: cert.validFromDate.getTime(),
    validTo: cert.validToDate.getTime(),
  }
  loadedCas.set(material, loaded)
  return loaded
}

interface LeafKey {
  spki: Buffer
  keyId: Buffer
  keyPem: string
}
const leafKeys = new WeakMap<KeyObject, LeafKey>()

/** What a leaf needs of its key (SPKI DER, key identifier, PKCS#8 PEM), memoised for a shared key. */
function leafKey(key: KeyObject): LeafKey {
  const hit = leafKeys.get(key)
  if (hit) return hit
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new TypeError('leaf key: a P-256 private key is required')
  }
  const publicKey = createPublicKey(key)
  const entry = {
    spki: publicKey.export({ type: 'spki', format: 'der' }),
    keyId: keyIdentifier(publicKey),
    keyPem: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
  }
  leafKeys.set(key, entry)
  return entry
}
