import { createCa, issueLeaf } from '../../src/tls/certificate.ts'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A throwaway CA and a leaf for 127.0.0.1/localhost, made by the real openssl for each test run. */
export function makeTestPki(): { caCert: string; key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'keyvalet-pki-'))
  const run = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' })
  }
  try {
    run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=keyvalet test CA')
    run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=127.0.0.1')
    const ext = join(dir, 'ext.cnf')
    execFileSync('sh', ['-c', `printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ${ext}`])
    run('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '2', '-extfile', ext)
    return { caCert: readFileSync(join(dir, 'ca.pem'), 'utf8'), key: readFileSync(join(dir, 'leaf.key'), 'utf8'), cert: readFileSync(join(dir, 'leaf.pem'), 'utf8') }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * A test upstream's certificate for `host` from a CA of its own (made with keyvalet's own
 * issuer, not keyvalet's interception CA): `caPem` is what keyvalet is told to trust.
 */
export function upstreamCertificate(host: string): { caPem: string; tls: { key: string; cert: string } } {
  const now = Date.now()
  const validity = { notBefore: new Date(now - 60_000), notAfter: new Date(now + 86_400_000) }
  const ca = createCa({ commonName: 'keyvalet test upstream CA', ...validity })
  const leaf = issueLeaf({ ca, host, ...validity })
  return { caPem: ca.certPem, tls: { key: leaf.keyPem, cert: leaf.certPem } }
}
