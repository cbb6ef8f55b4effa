import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { promisify } from 'node:util'
import * as der from './der.ts'

const hex = (b: Buffer) => b.toString('hex')

describe('DER writer', () => {
  it('writes INTEGER with the leading-zero rule', () => {
    assert.equal(hex(der.integer(0)), '020100')
    assert.equal(hex(der.integer(127)), '02017f')
    assert.equal(hex(der.integer(128)), '02020080')
    assert.equal(hex(der.integer(256n)), '02020100')
    assert.equal(hex(der.integer(2n ** 64n)), '0209010000000000000000')
    assert.equal(hex(der.integer(Buffer.from('000080', 'hex'))), '02020080', 'redundant zeros dropped')
    assert.equal(hex(der.integer(Buffer.from('ff', 'hex'))), '020200ff', 'unsigned buffer stays positive')
    assert.equal(hex(der.integer(Buffer.alloc(0))), '020100')
    assert.throws(() => der.integer(-1n), RangeError)
  })

  it('writes OBJECT IDENTIFIER from dotted form', () => {
    assert.equal(hex(der.oid('2.5.4.3')), '0603550403')
    assert.equal(hex(der.oid('1.2.840.113549')), '06062a864886f70d')
    assert.equal(hex(der.oid('1.2.840.10045.4.3.2')), '06082a8648ce3d040302')
    assert.equal(hex(der.oid('2.999.3')), '0603883703', 'X.690 §8.19 example')
    for (const bad of ['1', '1.2.', '3.1', '1.40', '1.02', 'a.b', '']) assert.throws(() => der.oid(bad), RangeError, bad)
  })

  it('writes strings, BOOLEAN, NULL, OCTET STRING', () => {
    assert.equal(hex(der.utf8String('é')), '0c02c3a9')
    assert.equal(hex(der.printableString('Ab 1')), '130441622031')
    assert.throws(() => der.printableString('a@b'), RangeError)
    assert.equal(hex(der.boolean(true)), '0101ff')
    assert.equal(hex(der.boolean(false)), '010100')
    assert.equal(hex(der.nullValue()), '0500')
    assert.equal(hex(der.octetString(Buffer.from('0102', 'hex'))), '04020102')
  })

  it('uses the long length form past 127 bytes', () => {
    assert.equal(hex(der.octetString(Buffer.alloc(127)).subarray(0, 2)), '047f')
    assert.equal(hex(der.octetString(Buffer.alloc(200)).subarray(0, 3)), '0481c8')
    assert.equal(hex(der.octetString(Buffer.alloc(300)).subarray(0, 4)), '0482012c')
    assert.equal(der.octetString(Buffer.alloc(70_000)).subarray(0, 5).toString('hex'), '0483011170')
  })

  it('switches from UTCTime to GeneralizedTime after 2049 (RFC 5280), dropping milliseconds', () => {
    const ascii = (b: Buffer) => `${b[0]?.toString(16)}:${b.subarray(2).toString('ascii')}`
    assert.equal(ascii(der.time(new Date('2049-12-31T23:59:59.999Z'))), '17:491231235959Z')
    assert.equal(ascii(der.time(new Date('2050-01-01T00:00:00Z'))), '18:20500101000000Z')
    assert.equal(ascii(der.time(new Date('1950-01-01T00:00:00Z'))), '17:500101000000Z')
    assert.equal(ascii(der.time(new Date('1949-12-31T23:59:59Z'))), '18:19491231235959Z')
    assert.throws(() => der.time(new Date(Number.NaN)), RangeError)
  })

  it('writes BIT STRINGs, named bits without trailing zeros', () => {
    assert.equal(hex(der.bitString(Buffer.from('abcd', 'hex'))), '030300abcd')
    assert.equal(hex(der.namedBits([0])), '03020780', 'keyUsage digitalSignature')
    assert.equal(hex(der.namedBits([5, 6])), '03020106', 'keyUsage keyCertSign, cRLSign')
    assert.equal(hex(der.namedBits([0, 8])), '0303078080')
    assert.equal(hex(der.namedBits([])), '030100')
  })

  it('writes SEQUENCE, sorted SET OF and context-specific tags', () => {
    assert.equal(hex(der.sequence()), '3000')
    assert.equal(hex(der.set(der.integer(2), der.integer(1))), '3106020101020102')
    assert.equal(hex(der.explicit(0, der.integer(2))), 'a003020102')
    assert.equal(hex(der.implicit(2, Buffer.from('a'))), '820161')
    assert.throws(() => der.implicit(31, Buffer.alloc(0)), RangeError)
  })

  it('produces what openssl asn1parse reads back', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'keyvalet-der-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, 'x.der')
    writeFileSync(file, der.sequence(
      der.oid('2.5.4.3'),
      der.integer(128),
      der.utf8String('keyvalet'),
      der.time(new Date('2049-12-31T23:59:59Z')),
      der.time(new Date('2050-01-01T00:00:00Z')),
      der.boolean(true),
      der.nullValue(),
      der.explicit(3, der.octetString(Buffer.alloc(200, 1))),
      der.set(der.printableString('b'), der.printableString('a')),
    ))
    const { stdout } = await promisify(execFile)('openssl', ['asn1parse', '-inform', 'DER', '-in', file])
    const lines = stdout.split('\n').map((l) => l.replace(/^.*?(prim|cons): /, '').replace(/\s+/g, ' ').trim()).filter(Boolean)
    assert.deepEqual(lines, [
      'SEQUENCE',
      'OBJECT :commonName',
      'INTEGER :80',
      'UTF8STRING :keyvalet',
      'UTCTIME :491231235959Z',
      'GENERALIZEDTIME :20500101000000Z',
      'BOOLEAN :255',
      'NULL',
      'cont [ 3 ]',
      `OCTET STRING [HEX DUMP]:${'01'.repeat(200).toUpperCase()}`,
      'SET',
      'PRINTABLESTRING :a',
      'PRINTABLESTRING :b',
    ])
  })
})
