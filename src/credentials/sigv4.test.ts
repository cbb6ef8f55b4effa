import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseRawQuery, smithyAuthorization } from '../../test/helpers/smithy-sigv4.ts'
import { EMPTY_SHA256, sha256Hex, sign, type SignableRequest } from './sigv4.ts'

const KEYS: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } = { accessKeyId: 'AKIAREALKEY000000001', secretAccessKey: 'real/secret+Access=Key0000000000000000000' }
const AT = new Date('2026-03-04T05:06:07.089Z')
const S3 = { service: 's3', region: 'eu-west-1' }

/** Signs with keyvalet's signer and with @smithy/signature-v4, and compares the Authorization headers. */
async function same(req: SignableRequest, opts: { keys?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }; scope?: typeof S3; oraclePath?: string } = {}): Promise<Record<string, string>> {
  const keys = opts.keys ?? KEYS
  const scope = opts.scope ?? S3
  const ours = sign(req, keys, scope, AT).headers
  const headers: Record<string, string> = {}
  for (const [k, v] of Object.entries(req.headers)) headers[k] = Array.isArray(v) ? v.join(',') : v
  headers['x-amz-content-sha256'] = req.payloadHash
  const theirs = await smithyAuthorization({ method: req.method, host: req.host, path: opts.oraclePath ?? req.path, query: parseRawQuery(req.query), headers }, keys, scope, AT)
  assert.equal(ours.authorization, theirs)
  assert.equal(ours['x-amz-date'], '20260304T050607Z')
  assert.equal(ours['x-amz-security-token'], keys.sessionToken)
  return ours
}

const base = { host: 's3.eu-west-1.amazonaws.com', query: '', headers: {} }

describe('SigV4 signer (byte-identical to @smithy/signature-v4)', () => {
  it('GET with the empty-body hash', async () => {
    const signed = await same({ ...base, method: 'GET', path: '/my-bucket/reports/q1.csv', headers: { 'x-amz-checksum-mode': 'ENABLED', accept: 'application/xml' }, payloadHash: EMPTY_SHA256 })
    assert.match(signed.authorization ?? '', /^AWS4-HMAC-SHA256 Credential=AKIAREALKEY000000001\/20260304\/eu-west-1\/s3\/aws4_request, SignedHeaders=accept;host;x-amz-checksum-mode;x-amz-content-sha256;x-amz-date, Signature=[0-9a-f]{64}$/)
  })

  it('PUT with a body hash and content headers', async () => {
    const body = Buffer.from('hello world')
    await same({ ...base, method: 'PUT', path: '/my-bucket/k', query: 'x-id=PutObject', headers: { 'content-type': 'text/plain', 'content-md5': 'XrY7u+Ae7tCTyyK7j1rNww==', 'x-amz-meta-owner': '  alice   and  bob ' }, payloadHash: sha256Hex(body) })
  })

  it('UNSIGNED-PAYLOAD and the aws-chunked trailer form', async () => {
    await same({ ...base, method: 'PUT', path: '/my-bucket/big', headers: { 'content-type': 'application/octet-stream' }, payloadHash: 'UNSIGNED-PAYLOAD' })
    await same({ ...base, method: 'PUT', path: '/my-bucket/big', headers: { 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': '100000', 'x-amz-trailer': 'x-amz-checksum-crc32' }, payloadHash: 'STREAMING-UNSIGNED-PAYLOAD-TRAILER' })
  })

  it('with a session token (signed as x-amz-security-token)', async () => {
    const signed = await same({ ...base, method: 'GET', path: '/my-bucket', query: 'list-type=2', payloadHash: EMPTY_SHA256 }, { keys: { ...KEYS, sessionToken: 'FwoGZXIvYXdzE//token+with/odd=chars' } })
    assert.match(signed.authorization ?? '', /SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,/)
  })

  it('odd query parameters: repeated, bare, reserved and non-ASCII characters, unsorted', async () => {
    await same({ ...base, method: 'GET', path: '/my-bucket', query: 'prefix=a%20b%2Fc&list-type=2&acl&z=%E2%9C%93&a=2&a=1&star=%2A%21&tilde=~&continuation-token=x%2By%3D', payloadHash: EMPTY_SHA256 })
  })

  it('S3 paths with characters SigV4 encodes (signed once-encoded)', async () => {
    // The SDK sends the key encoded once; S3 signs it as decoded-then-encoded, which is the same.
    const wire = '/my-bucket/dir%20one/%C3%A9t%C3%A9%21%28x%29%2A~_.-.txt'
    await same({ ...base, method: 'GET', path: wire, payloadHash: EMPTY_SHA256 })
    // A client that left ! ( ) * or : unencoded is signed as S3 will see them: encoded.
    await same({ ...base, method: 'GET', path: "/my-bucket/a!b(c)*d:e'f", payloadHash: EMPTY_SHA256 }, { oraclePath: '/my-bucket/a%21b%28c%29%2Ad%3Ae%27f' })
  })

  it('other services double-encode the path', async () => {
    const lambda = { service: 'lambda', region: 'us-east-1' }
    await same({ ...base, host: 'lambda.us-east-1.amazonaws.com', method: 'POST', path: '/2015-03-31/functions/my%3Afn%20x/invocations', headers: { 'content-type': 'application/json' }, payloadHash: sha256Hex('{}') }, { scope: lambda })
  })

  it('headers the hops rewrite are not signed, header values are trimmed and folded', async () => {
    const signed = await same({ ...base, method: 'GET', path: '/b/k', headers: { 'user-agent': 'sdk', 'x-amzn-trace-id': 't', 'cache-control': 'no', 'x-amz-meta-a': 'x\t \ty' }, payloadHash: EMPTY_SHA256 })
    assert.match(signed.authorization ?? '', /SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-meta-a,/)
  })
})
