import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { KeyvaletError } from '../errors.ts'
import { ChunkResigner } from './aws-chunks.ts'
import { sign } from './sigv4.ts'

// AWS's published example of a signed streaming upload (S3 API reference, "Signature calculation
// when using multiple chunks"): 66,560 bytes of 'a' as a 64 KiB chunk, a 1 KiB chunk and the
// final empty one, with the documented seed and chunk signatures.
const KEYS = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' }
const SCOPE = { service: 's3', region: 'us-east-1' }
const AT = new Date('2013-05-24T00:00:00Z')
const SEED = '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9'
const SIGNATURES = [
  'ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648',
  '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497',
  'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9',
]
const SIZES = [65536, 1024, 0]

function body(signatures: readonly string[]): Buffer {
  return Buffer.concat(SIZES.map((size, i) => Buffer.from(`${size.toString(16)};chunk-signature=${signatures[i]}\r\n${'a'.repeat(size)}\r\n`)))
}

/**
 * The signing context of the example request, chained from its documented seed. (keyvalet's own
 * request signature differs from the seed: the example signs content-length, which keyvalet
 * never signs; the signing key, date and scope are the same.)
 */
function example() {
  const { chunks } = sign({
    method: 'PUT', host: 's3.amazonaws.com', path: '/examplebucket/chunkObject.txt', query: '', payloadHash: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
    headers: { 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': '66560', 'x-amz-storage-class': 'REDUCED_REDUNDANCY' },
  }, KEYS, SCOPE, AT)
  return { chunks: { ...chunks, seed: SEED } }
}

const malformed = (err: unknown): boolean => err instanceof KeyvaletError && err.code === 'request_malformed' && err.detail?.why === 'aws_chunked_malformed'

describe('aws-chunked re-signing (AWS\'s published example)', () => {
  it('signs with the example\'s date and scope', () => {
    assert.equal(example().chunks.amzDate, '20130524T000000Z')
    assert.equal(example().chunks.credentialScope, '20130524/us-east-1/s3/aws4_request')
  })

  it('replaces every chunk signature with the documented one, byte for byte the same length, however the body is split', () => {
    const dummy = body(SIGNATURES.map(() => '0'.repeat(64)))
    for (const step of [1, 7, 4096, 65_600, dummy.length]) {
      const resigner = new ChunkResigner(example().chunks)
      const out: Buffer[] = []
      for (let at = 0; at < dummy.length; at += step) out.push(...resigner.push(dummy.subarray(at, at + step)))
      resigner.end()
      const resigned = Buffer.concat(out)
      assert.equal(resigned.length, dummy.length, `step ${step}`)
      assert.ok(resigned.equals(body(SIGNATURES)), `step ${step}`)
    }
  })

  it('refuses framing it cannot sign: a bad header, a missing CRLF, data after the end, a body cut short', () => {
    const good = body(SIGNATURES)
    const cases: [string, Buffer, boolean][] = [
      ['not hex', Buffer.from(`zz;chunk-signature=${'0'.repeat(64)}\r\n`), false],
      ['no signature', Buffer.from('10\r\naaaaaaaaaaaaaaaa\r\n'), false],
      ['short signature', Buffer.from(`1;chunk-signature=${'0'.repeat(63)}\r\na\r\n`), false],
      ['no CRLF after the data', Buffer.from(`1;chunk-signature=${'0'.repeat(64)}\r\nab\r\n`), false],
      ['data after the final chunk', Buffer.concat([good, Buffer.from('x')]), false],
      ['cut short', good.subarray(0, good.length - 5), true],
    ]
    for (const [what, input, atEnd] of cases) {
      const resigner = new ChunkResigner(example().chunks)
      if (atEnd) {
        resigner.push(input)
        assert.throws(() => resigner.end(), malformed, what)
      } else {
        assert.throws(() => resigner.push(input), malformed, what)
      }
    }
  })

  it('holds at most one chunk, and refuses a chunk declared larger than 16 MiB', () => {
    const resigner = new ChunkResigner(example().chunks)
    assert.throws(() => resigner.push(Buffer.from(`1000001;chunk-signature=${'0'.repeat(64)}\r\n`)), malformed)
  })
})
