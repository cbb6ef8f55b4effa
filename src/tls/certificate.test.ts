import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { createCa, issueLeaf, type CaMaterial } from './certificate.ts'
import { InvalidHostError, parseLeafHost } from './host.ts'

const run = promisify(execFile)
const dir = mkdtempSync(join(tmpdir(), 'keyvalet-cert-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const write = (pem: string) => {
  const file = join(dir, `${++files}.pem`)
  writeFileSync(file, pem)
  return file
}

const now = Date.now()
const hours = (n: number) => new Date(now + n * 3_600_000)
const ca = createCa({ commonName: 'keyvalet test CA', notBefore: hours(-1), notAfter: hours(24 * 365) })
const caFile = write(ca.certPem)
const caCert = new X509Certificate(ca.certPem)
const leafFor = (host: string, extra: Partial<Parameters<typeof issueLeaf>[0]> = {}) =>
  issueLeaf({ ca, host, notBefore: hours(0), notAfter: hours(24), ...extra })

/** `openssl verify` as the independent verifier; resolves to its output, whether it passed or not. */
async function opensslVerify(caPath: string, leafPem: string, ...flags: string[]): Promise<string> {
  const args = ['verify', '-x509_strict', '-purpose', 'sslserver', ...flags, '-CAfile', caPath, write(leafPem)]
  try {
    const { stdout } = await run('openssl', args)
    return stdout.trim()
  } catch (err) {
    const { stdout = '', stderr = '' } = err as { stdout?: string; stderr?: string }
    return `${stdout}${stderr}`.trim()
  }
}
const opensslText = async (pem: string) => (await run('openssl', ['x509', '-noout', '-text', '-in', write(pem)])).stdout

describe('createCa', () => {
  it('makes a P-256 CA with critical CA:TRUE pathlen 0, keyCertSign+cRLSign, and a key identifier', async () => {
    const text = await opensslText(ca.certPem)
    assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/)
    assert.match(text, /NIST CURVE: P-256/)
    assert.match(text, /Subject: CN = keyvalet test CA/)
    assert.match(text, /Basic Constraints: critical\s+CA:TRUE, pathlen:0/)
    assert.match(text, /Key Usage: critical\s+Certificate Sign, CRL Sign/)
    assert.match(text, /Subject Key Identifier:\s+[0-9A-F:]{59}/)
    assert.equal(caCert.ca, true)
    assert.equal(caCert.checkIssued(caCert), true)
    assert.equal(caCert.verify(caCert.publicKey), true)
    assert.equal(createPrivateKey(ca.keyPem).asymmetricKeyDetails?.namedCurve, 'prime256v1')
    assert.match(ca.keyPem, /^-----BEGIN PRIVATE KEY-----\n/, 'PKCS#8')
  })

  it('refuses a common name it could not read back safely', () => {
    for (const commonName of ['', ' lead', 'a,b', 'CN=x', 'a\nb', 'x'.repeat(65)]) {
      assert.throws(() => createCa({ commonName, notBefore: hours(0), notAfter: hours(1) }), RangeError, commonName)
    }
    assert.throws(() => createCa({ commonName: 'ok', notBefore: hours(1), notAfter: hours(1) }), RangeError)
  })
})

describe('issueLeaf', () => {
  it('mints a DNS leaf that openssl verifies for that name only', async () => {
    const leaf = leafFor('api.example.test')
    assert.equal(await opensslVerify(caFile, leaf.certPem, '-verify_hostname', 'api.example.test'), `${join(dir, `${files}.pem`)}: OK`)
    assert.match(await opensslVerify(caFile, leaf.certPem, '-verify_hostname', 'evil.example.test'), /hostname mismatch/)
    const otherCa = createCa({ commonName: 'keyvalet test CA', notBefore: hours(-1), notAfter: hours(24) })
    assert.match(await opensslVerify(write(otherCa.certPem), leaf.certPem), /unable to get local issuer certificate|certificate signature failure/)
  })

  it('sets the SAN, key usages, CA:FALSE and the CA key identifier', async () => {
    const text = await opensslText(leafFor('api.example.test').certPem)
    assert.match(text, /Issuer: CN = keyvalet test CA/)
    assert.match(text, /Subject: CN = api.example.test/)
    assert.match(text, /Basic Constraints: critical\s+CA:FALSE/)
    assert.match(text, /Key Usage: critical\s+Digital Signature\n/)
    assert.match(text, /Extended Key Usage: \s*\n\s+TLS Web Server Authentication\n/)
    assert.match(text, /Subject Alternative Name: \s*\n\s+DNS:api\.example\.test\n/)
    const caSki = /Subject Key Identifier:\s+([0-9A-F:]+)/.exec(await opensslText(ca.certPem))?.[1]
    assert.ok(caSki)
    assert.match(text, new RegExp(`Authority Key Identifier: \\s*\\n\\s+(keyid:)?${caSki}\\n`))
    assert.match(text, /Subject Key Identifier:\s+[0-9A-F:]{59}/)
  })

  it('passes node:crypto checks: issued by, signed by, host', () => {
    const leaf = new X509Certificate(leafFor('API.Example.Test').certPem)
    assert.equal(leaf.checkIssued(caCert), true)
    assert.equal(leaf.verify(caCert.publicKey), true)
    assert.equal(leaf.ca, false)
    assert.equal(leaf.checkHost('api.example.test'), 'api.example.test')
    assert.equal(leaf.checkHost('other.example.test'), undefined)
    assert.equal(leaf.checkHost('x.api.example.test'), undefined)
    assert.equal(leaf.subjectAltName, 'DNS:api.example.test', 'lower-cased')
    assert.deepEqual(leaf.keyUsage, ['1.3.6.1.5.5.7.3.1'])
  })

  it('uses IP SANs for IPv4 and IPv6 literals', async () => {
    const v4 = leafFor('127.0.0.1')
    assert.equal(new X509Certificate(v4.certPem).checkIP('127.0.0.1'), '127.0.0.1')
    assert.equal(new X509Certificate(v4.certPem).subjectAltName, 'IP Address:127.0.0.1')
    assert.match(await opensslVerify(caFile, v4.certPem, '-verify_ip', '127.0.0.1'), /: OK$/)
    for (const spelling of ['::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '2001:DB8::42']) {
      const canonical = parseLeafHost(spelling)
      assert.equal(canonical.kind, 'ip')
      const cert = new X509Certificate(leafFor(spelling).certPem)
      assert.equal(cert.checkIP(spelling), spelling, spelling)
      assert.match(await opensslVerify(caFile, cert.toString(), '-verify_ip', spelling), /: OK$/, spelling)
    }
    assert.match(await opensslText(leafFor('2001:db8::42').certPem), /IP Address:2001:DB8:0:0:0:0:0:42/)
  })

  it('gives a name longer than a CN allows an empty subject and a critical SAN', async () => {
    const host = `${'a'.repeat(60)}.example.test`
    const leaf = leafFor(host)
    const text = await opensslText(leaf.certPem)
    assert.match(text, /Subject: \n/)
    assert.match(text, /Subject Alternative Name: critical\s+DNS:a{60}\.example\.test/)
    assert.match(await opensslVerify(caFile, leaf.certPem, '-verify_hostname', host), /: OK$/)
  })

  it('clamps validity to the CA and to whole seconds, and refuses an empty one', () => {
    const inside = leafFor('a.test', { notBefore: new Date(now + 1234), notAfter: hours(2) })
    assert.equal(inside.notBefore.getTime(), Math.floor((now + 1234) / 1000) * 1000)
    const wide = leafFor('a.test', { notBefore: hours(-100), notAfter: hours(24 * 1000) })
    const cert = new X509Certificate(wide.certPem)
    assert.equal(cert.validFromDate.getTime(), caCert.validFromDate.getTime())
    assert.equal(cert.validToDate.getTime(), caCert.validToDate.getTime())
    assert.deepEqual([wide.notBefore, wide.notAfter], [cert.validFromDate, cert.validToDate])
    assert.throws(() => leafFor('a.test', { notBefore: hours(24 * 400), notAfter: hours(24 * 401) }), RangeError)
  })

  it('draws a fresh key and serial per leaf unless a shared key is given', () => {
    const [a, b] = [leafFor('a.test'), leafFor('a.test')].map((l) => new X509Certificate(l.certPem)) as [X509Certificate, X509Certificate]
    assert.notEqual(a.serialNumber, b.serialNumber)
    assert.match(a.serialNumber, /^[0-9A-F]{1,34}$/)
    assert.equal(a.publicKey.equals(b.publicKey), false)
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
    const [c, d] = [leafFor('a.test', { key }), leafFor('b.test', { key })]
    assert.ok(c && d && c.keyPem === d.keyPem)
    assert.equal(new X509Certificate(c.certPem).checkPrivateKey(key), true)
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey
    assert.throws(() => leafFor('a.test', { key: rsa }), TypeError)
  })

  it('rejects every host that is not a plain DNS name or IP literal', () => {
    const bad = ['', '*.example.com', 'a.*.com', 'exa mple.com', 'a\0b.com', 'a\r\nb.com', 'example.com.', '.example.com',
      '-a.com', 'a-.com', 'a..b', 'a_b.com', 'bücher.de', 'a/b', 'a@b', '[::1]', 'fe80::1%eth0', '::1:', '1::2::3',
      'example.com:443', '1.2.3', '127.1', '0x7f.0.0.1', '2130706433', '01.2.3.4', '1.2.3.256', 'a.0x1f',
      `${'a'.repeat(64)}.com`, `${'a.'.repeat(126)}aa`]
    for (const host of bad) assert.throws(() => leafFor(host), InvalidHostError, JSON.stringify(host))
    for (const host of ['localhost', 'xn--bcher-kva.de', 'a-b.c0m', '1.2.3.4.example', '0x.test.io', `${'a'.repeat(63)}.com`]) {
      assert.doesNotThrow(() => parseLeafHost(host), host)
    }
  })

  it('refuses a CA it did not make, a mismatched key or a non-CA certificate', async () => {
    const key = join(dir, 'foreign.key')
    const cert = join(dir, 'foreign.pem')
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
      '-subj', '/O=Other/CN=Other CA', '-keyout', key, '-out', cert])
    const foreign: CaMaterial = { certPem: readFileSync(cert, 'utf8'), keyPem: readFileSync(key, 'utf8') }
    assert.throws(() => leafFor('a.test', { ca: foreign }), /subject is not one createCa writes/)
    const otherKey = createCa({ commonName: 'x', notBefore: hours(0), notAfter: hours(1) }).keyPem
    assert.throws(() => leafFor('a.test', { ca: { certPem: ca.certPem, keyPem: otherKey } }), /key does not match/)
    const leaf = leafFor('a.test')
    assert.throws(() => leafFor('b.test', { ca: leaf }), /not a CA/)
  })

  it('measures minting cost: fresh key vs shared key', (t) => {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
    const mean = (n: number, mint: () => void) => {
      for (let i = 0; i < 20; i++) mint()
      const start = process.hrtime.bigint()
      for (let i = 0; i < n; i++) mint()
      return Number(process.hrtime.bigint() - start) / 1000 / n
    }
    const fresh = mean(200, () => leafFor(`h${Math.random().toString(36).slice(2)}.test`))
    const shared = mean(500, () => leafFor(`h${Math.random().toString(36).slice(2)}.test`, { key }))
    t.diagnostic(`issueLeaf: fresh key ${fresh.toFixed(0)} µs, shared key ${shared.toFixed(0)} µs per leaf`)
  })
})
