/**
 * The CA bundle a sandbox trusts: keyvalet's interception CA *and* the CAs the sandbox trusted
 * before. SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE and GIT_SSL_CAINFO replace a tool's
 * trust store rather than add to it, so pointing them at keyvalet's CA alone breaks every host the
 * forward proxy tunnels without interception (their certificates are the real ones).
 */

import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { getCACertificates } from 'node:tls'
import { OperatorError } from '../errors.ts'

/**
 * Where the bundle's other CAs come from. `system`: this machine's store as Node reads it
 * (OpenSSL's default file and folder, SSL_CERT_FILE and SSL_CERT_DIR honoured). `node`: the Mozilla
 * list built into Node. Otherwise a PEM file, e.g. the sandbox image's own ca-certificates.crt.
 */
export type BundleBase = 'system' | 'node' | { readonly file: string }

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

/** The base's certificates (PEM), each parsed once; a file that holds none, or a broken one, is refused. */
export function baseCertificates(base: BundleBase): string[] {
  if (base === 'system') return getCACertificates('system')
  if (base === 'node') return getCACertificates('bundled')
  let text: string
  try {
    text = readFileSync(base.file, 'utf8')
  } catch (err) {
    throw new OperatorError(`cannot read ${base.file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'name a PEM file of CA certificates, e.g. /etc/ssl/certs/ca-certificates.crt', { cause: err })
  }
  const blocks = text.match(PEM_BLOCK) ?? []
  if (blocks.length === 0) throw new OperatorError(`${base.file} holds no PEM certificate`, 'name a PEM file of CA certificates, e.g. /etc/ssl/certs/ca-certificates.crt')
  blocks.forEach((block, i) => {
    try {
      new X509Certificate(block)
    } catch (err) {
      throw new OperatorError(`${base.file}: certificate ${i + 1} cannot be parsed`, 'fix or remove it', { cause: err })
    }
  })
  return blocks
}

/**
 * keyvalet's CA first, then the base's certificates, each once (by SHA-256 fingerprint), as PEM
 * blocks and nothing else (some TLS stacks refuse text between blocks).
 */
export function trustBundle(caPem: string, base: readonly string[]): { pem: string; count: number } {
  const seen = new Set<string>()
  const blocks: string[] = []
  for (const pem of [caPem, ...base]) {
    const cert = new X509Certificate(pem)
    if (seen.has(cert.fingerprint256)) continue
    seen.add(cert.fingerprint256)
    blocks.push(cert.toString().trimEnd())
  }
  return { pem: `${blocks.join('\n')}\n`, count: blocks.length }
}
