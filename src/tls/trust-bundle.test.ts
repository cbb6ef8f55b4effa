import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { OperatorError } from '../errors.ts'
import { createCa } from './certificate.ts'
import { baseCertificates, trustBundle } from './trust-bundle.ts'

const validity = { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000) }
const keyvalet = createCa({ commonName: 'keyvalet interception CA', ...validity }).certPem
const publicCa = createCa({ commonName: 'a public CA', ...validity }).certPem

describe('the CA bundle sandboxes trust', () => {
  it("holds keyvalet's CA first, then each base certificate once, as PEM blocks only", () => {
    const { pem, count } = trustBundle(keyvalet, [publicCa, keyvalet, publicCa])
    assert.equal(count, 2)
    const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
    assert.equal(blocks.length, 2)
    assert.equal(blocks.join('\n') + '\n', pem, 'nothing between or around the blocks')
    assert.equal(blocks[0]?.trim(), keyvalet.trim())
  })

  it('takes its base from Node (the Mozilla list) or a PEM file; refuses a file without certificates or with a broken one', () => {
    assert.ok(baseCertificates('node').length > 100)
    const dir = mkdtempSync(join(tmpdir(), 'keyvalet-bundle-'))
    try {
      const file = join(dir, 'cas.pem')
      writeFileSync(file, `# a comment\n${publicCa}\n`)
      assert.deepEqual(baseCertificates({ file }).map((p) => p.trim()), [publicCa.trim()])
      writeFileSync(file, 'not a certificate')
      assert.throws(() => baseCertificates({ file }), (err: unknown) => err instanceof OperatorError && /holds no PEM certificate/.test(err.message))
      writeFileSync(file, `${publicCa}\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n`)
      assert.throws(() => baseCertificates({ file }), (err: unknown) => err instanceof OperatorError && /certificate 2 cannot be parsed/.test(err.message))
      assert.throws(() => baseCertificates({ file: join(dir, 'missing.pem') }), /cannot read .*missing\.pem \(ENOENT\)/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
