import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { CopyObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { request } from 'undici'
import { parseConfig } from '../../src/config/load.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startS3Server, type S3Server } from '../helpers/s3-server.ts'
import { upstreamCertificate } from '../helpers/tls.ts'

const REAL = { accessKeyId: 'AKIAREALKEYFORTESTS01', secretAccessKey: 'rEaL/Secret+AccessKey0123456789abcdefGHIJ', sessionToken: 'FwoGZXIvYXdzEREALSESSIONTOKEN/with+odd=chars' }
const DUMMY_SECRET = 'dummy-secret-the-sandbox-holds'
const REGION = 'eu-west-1'
const BIG = 8 * 1024 * 1024

describe('aws_sigv4: the AWS SDK v3 S3 client with dummy keys, through the gateway, to a verifying S3', () => {
  const cert = upstreamCertificate('127.0.0.1')
  let s3: S3Server
  let kv: TestKeyvalet
  let key: string
  let client: S3Client

  before(async () => {
    s3 = await startS3Server({ keys: REAL, region: REGION, tls: cert.tls })
    const connector = (name: string, secret: string, extra = '') => `  ${name}:
    upstream: ${s3.url}
    ca_file: s3-ca.pem
    allow_addresses: [127.0.0.1/32]
    credential: { secret: ${secret}, inject: aws_sigv4, aws: { service: s3, region: ${REGION}${extra} } }
    rules:
      # ListObjectsV2 path-style is GET /my-bucket/?list-type=2&prefix=...: the trailing '/' is part of the path.
      - { id: list, methods: [GET], path: /my-bucket/, severity: read, query: { prefix: { pattern: "(reports|uploads)/.*", required: true } } }
      - { id: read-reports, methods: [GET, HEAD], path: "/my-bucket/reports/**", severity: read }
      - { id: write-uploads, methods: [PUT], path: "/my-bucket/uploads/**", severity: write }
      - { id: write-shared, methods: [PUT], path: "/my-bucket/shared/**", severity: write, headers: { x-amz-acl: { pattern: bucket-owner-full-control } } }
`
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
${connector('s3', 'aws-prod')}${connector('s3-unsigned', 'aws-prod', ', unsigned_payload: true')}${connector('s3-broken', 'aws-broken')}`, { files: { 's3-ca.pem': cert.caPem } })
    await kv.setSecret('aws-prod', JSON.stringify({ access_key_id: REAL.accessKeyId, secret_access_key: REAL.secretAccessKey, session_token: REAL.sessionToken }))
    await kv.setSecret('aws-broken', JSON.stringify({ access_key_id: REAL.accessKeyId, secret_key: REAL.secretAccessKey }))
    key = (await kv.mintKey(['s3:write', 's3-unsigned:write', 's3-broken:read'])).key
    // Gateway mode: the task key is the access key id; the secret key is a dummy nobody checks.
    client = new S3Client({ endpoint: `${kv.url}/s3`, forcePathStyle: true, region: REGION, maxAttempts: 1, credentials: { accessKeyId: key, secretAccessKey: DUMMY_SECRET } })
  })

  after(async () => {
    client.destroy()
    await kv.close()
    await s3.close()
  })

  /** Nothing the sandbox held reached S3: no task key, no dummy secret, the real access key id signed it. */
  function assertSignedByRealKeyOnly(from: number): void {
    const seen = s3.received.slice(from)
    assert.ok(seen.length > 0)
    for (const r of seen) {
      assert.equal(r.refused, undefined, `S3 refused ${r.method} ${r.url}: ${r.refused}`)
      assert.match(String(r.headers.authorization), new RegExp(`^AWS4-HMAC-SHA256 Credential=${REAL.accessKeyId}/\\d{8}/${REGION}/s3/aws4_request, `))
      const all = JSON.stringify(r.headers)
      assert.ok(!all.includes(key) && !all.includes(DUMMY_SECRET) && !all.includes(REAL.secretAccessKey), 'no sandbox key and no secret key on the wire')
      assert.equal(r.headers['x-amz-security-token'], REAL.sessionToken)
    }
  }

  it('PutObject, GetObject and ListObjectsV2 verify against the real keys', async () => {
    const from = s3.received.length
    await client.send(new PutObjectCommand({ Bucket: 'my-bucket', Key: 'uploads/hello world!.txt', Body: 'hello from the sandbox', ContentType: 'text/plain' }))
    s3.objects.set('my-bucket/reports/q1 (final).csv', Buffer.from('a,b\n1,2\n'))
    const got = await client.send(new GetObjectCommand({ Bucket: 'my-bucket', Key: 'reports/q1 (final).csv' }))
    assert.equal(await got.Body?.transformToString(), 'a,b\n1,2\n')
    const listed = await client.send(new ListObjectsV2Command({ Bucket: 'my-bucket', Prefix: 'uploads/' }))
    assert.deepEqual(listed.Contents?.map((c) => c.Key), ['uploads/hello world!.txt'])
    assert.equal(s3.objects.get('my-bucket/uploads/hello world!.txt')?.toString(), 'hello from the sandbox')
    assertSignedByRealKeyOnly(from)
    const records = (await kv.audit()).slice(-3)
    assert.deepEqual(records.map((r) => [r.decision, r.rule, r.credential, r.status, r.upstream_status]), [
      ['allow', 'write-uploads', 'aws-prod', 200, 200], ['allow', 'read-reports', 'aws-prod', 200, 200], ['allow', 'list', 'aws-prod', 200, 200],
    ])
  })

  it(`streams a ${BIG / 1024 / 1024} MiB PutObject (aws-chunked, unsigned chunks, CRC32 trailer) byte-exact`, async () => {
    const from = s3.received.length
    const expected = createHash('sha256')
    async function* pieces(): AsyncGenerator<Buffer> {
      for (let i = 0; i < BIG / 65536; i++) {
        const piece = Buffer.alloc(65536, i % 251)
        piece.writeUInt32BE(i)
        expected.update(piece)
        yield piece
      }
    }
    await client.send(new PutObjectCommand({ Bucket: 'my-bucket', Key: 'uploads/big.bin', Body: Readable.from(pieces()), ContentLength: BIG }))
    const stored = s3.objects.get('my-bucket/uploads/big.bin')
    assert.equal(stored?.length, BIG)
    assert.equal(createHash('sha256').update(stored ?? Buffer.alloc(0)).digest('hex'), expected.digest('hex'))
    const seen = s3.received.at(-1)
    assert.equal(seen?.headers['x-amz-content-sha256'], 'STREAMING-UNSIGNED-PAYLOAD-TRAILER')
    assert.ok((seen?.rawBytes ?? 0) > BIG, 'the aws-chunked framing went through untouched')
    assertSignedByRealKeyOnly(from)
    const record = (await kv.audit()).at(-1)
    assert.equal(record?.rule, 'write-uploads')
    assert.equal(record?.bytes_in, seen?.rawBytes)
  })

  /** The SDK's error for a refused call: keyvalet answers AWS connectors with S3's XML error document, so the SDK names keyvalet's code. */
  async function refusal(send: () => Promise<unknown>): Promise<Error & { $metadata: { httpStatusCode?: number } }> {
    try {
      await send()
    } catch (err) {
      if (err instanceof Error && '$metadata' in err) return err as Error & { $metadata: { httpStatusCode?: number } }
      throw err
    }
    throw new Error('expected a refusal')
  }

  it('a bucket outside the rules is refused by keyvalet: S3 sees nothing', async () => {
    const from = s3.received.length
    const err = await refusal(() => client.send(new GetObjectCommand({ Bucket: 'other-bucket', Key: 'reports/q1.csv' })))
    assert.equal(err.$metadata.httpStatusCode, 403)
    assert.equal(err.name, 'policy_denied', 'the SDK reports keyvalet\'s code')
    assert.match(err.message, /^keyvalet: Connector s3 has no rule for this path; the request was refused \(no_rule_for_path\)\.$/)
    assert.equal(s3.received.length, from)
    const record = (await kv.audit()).at(-1)
    assert.equal(record?.decision, 'deny')
    assert.equal(record?.error, 'policy_denied')
    assert.equal(record?.path, '/other-bucket/reports/q1.csv')
  })

  it('a key outside the allowed prefix is refused: S3 sees nothing', async () => {
    const from = s3.received.length
    const err = await refusal(() => client.send(new PutObjectCommand({ Bucket: 'my-bucket', Key: 'reports/overwrite.csv', Body: 'x' })))
    assert.equal(err.$metadata.httpStatusCode, 403)
    assert.equal(s3.received.length, from)
    assert.equal(s3.objects.has('my-bucket/reports/overwrite.csv'), false)
    const listing = await refusal(() => client.send(new ListObjectsV2Command({ Bucket: 'my-bucket', Prefix: 'secrets/' })))
    assert.equal(listing.$metadata.httpStatusCode, 403)
    assert.equal(s3.received.length, from)
    const [put, list] = (await kv.audit()).slice(-2)
    assert.deepEqual([put?.error, put?.method, put?.path], ['policy_denied', 'PUT', '/my-bucket/reports/overwrite.csv'])
    assert.deepEqual([list?.error, list?.path, list?.query_keys], ['policy_denied', '/my-bucket/', ['list-type', 'prefix']])
  })

  it('reports/** is the objects below reports/, not an object named reports: S3 sees nothing', async () => {
    s3.objects.set('my-bucket/reports', Buffer.from('not below the prefix'))
    const from = s3.received.length
    const err = await refusal(() => client.send(new GetObjectCommand({ Bucket: 'my-bucket', Key: 'reports' })))
    assert.equal(err.$metadata.httpStatusCode, 403)
    assert.equal(err.name, 'policy_denied')
    assert.equal(s3.received.length, from)
    const record = (await kv.audit()).at(-1)
    assert.deepEqual([record?.decision, record?.reason, record?.path], ['deny', 'no_rule_for_path', '/my-bucket/reports'])
  })

  it('an object that echoes the secret access key or the session token comes back masked', async () => {
    s3.objects.set('my-bucket/reports/leak.txt', Buffer.from(`key=${REAL.secretAccessKey} token=${REAL.sessionToken}`))
    const got = await client.send(new GetObjectCommand({ Bucket: 'my-bucket', Key: 'reports/leak.txt' }))
    const text = (await got.Body?.transformToString()) ?? ''
    assert.ok(!text.includes(REAL.secretAccessKey) && !text.includes(REAL.sessionToken))
    assert.equal(text, `key=${'*'.repeat(REAL.secretAccessKey.length)} token=${'*'.repeat(REAL.sessionToken.length)}`)
    assert.equal((await kv.audit()).at(-1)?.redactions, 2)
  })

  /** A raw client standing in for a tool that signs its own way (the task key as access key id). */
  const rawAuth = () => `AWS4-HMAC-SHA256 Credential=${key}/20260101/${REGION}/s3/aws4_request, SignedHeaders=host, Signature=${'0'.repeat(64)}`

  it('signed chunks (STREAMING-AWS4-HMAC-SHA256-PAYLOAD, as non-JavaScript SDKs stream uploads): every chunk is re-signed with the real key as it streams', async () => {
    const from = s3.received.length
    // What an SDK holding dummy keys sends: aws-chunked framing whose signatures keyvalet ignores.
    const sizes = [65536, 65536, 1000, 0]
    const data = sizes.map((n, i) => Buffer.alloc(n, 97 + i))
    const framed = Buffer.concat(data.map((d) => Buffer.from(`${d.length.toString(16)};chunk-signature=${'0'.repeat(64)}\r\n${d.toString('latin1')}\r\n`, 'latin1')))
    const res = await request(`${kv.url}/s3/my-bucket/uploads/chunked.bin`, {
      method: 'PUT',
      headers: {
        authorization: rawAuth(), 'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', 'content-encoding': 'aws-chunked',
        'x-amz-decoded-content-length': String(data.reduce((n, d) => n + d.length, 0)), 'content-length': String(framed.length),
      },
      body: Readable.from([framed.subarray(0, 1000), framed.subarray(1000, 70_000), framed.subarray(70_000)]),
    })
    await res.body.dump()
    assert.equal(res.statusCode, 200)
    assert.ok(s3.objects.get('my-bucket/uploads/chunked.bin')?.equals(Buffer.concat(data)), 'S3 verified every chunk signature and stored the bytes')
    assert.equal(s3.received.at(-1)?.rawBytes, framed.length, 'the framing kept its length')
    assertSignedByRealKeyOnly(from)
    const record = (await kv.audit()).at(-1)
    assert.deepEqual([record?.decision, record?.rule, record?.bytes_in], ['allow', 'write-uploads', framed.length])

    // A body whose framing breaks midway is cut: S3 stores nothing.
    const broken = Buffer.concat([framed.subarray(0, 70_000), Buffer.from('zz;bad\r\n')])
    const cut = await request(`${kv.url}/s3/my-bucket/uploads/broken.bin`, {
      method: 'PUT',
      headers: { authorization: rawAuth(), 'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': '131072', 'content-length': String(broken.length) },
      body: Readable.from([broken]),
    }).then(async (r) => ({ status: r.statusCode, text: await r.body.text() }), (err: Error) => ({ status: 0, text: err.message }))
    assert.notEqual(cut.status, 200)
    assert.equal(s3.objects.has('my-bucket/uploads/broken.bin'), false)
    for (let i = 0; i < 100 && (await kv.audit()).at(-1)?.path !== '/my-bucket/uploads/broken.bin'; i++) await new Promise((r) => setTimeout(r, 10))
    const refused = (await kv.audit()).at(-1)
    assert.equal(refused?.path, '/my-bucket/uploads/broken.bin')
    assert.equal((refused?.detail as { why?: string } | undefined)?.why, 'aws_chunked_malformed')
  })

  it('CopyObject: the copy source must be readable under the same rules and grant; a source outside them is refused before S3 sees anything', async () => {
    s3.objects.set('my-bucket/reports/q2.csv', Buffer.from('x,y\n3,4\n'))
    s3.objects.set('other-bucket/private.csv', Buffer.from('secret rows'))
    const from = s3.received.length
    await client.send(new CopyObjectCommand({ Bucket: 'my-bucket', Key: 'uploads/q2-copy.csv', CopySource: 'my-bucket/reports/q2.csv' }))
    assert.equal(s3.objects.get('my-bucket/uploads/q2-copy.csv')?.toString(), 'x,y\n3,4\n')
    assertSignedByRealKeyOnly(from)
    const copied = (await kv.audit()).at(-1)
    assert.deepEqual([copied?.decision, copied?.rule, copied?.path], ['allow', 'write-uploads', '/my-bucket/uploads/q2-copy.csv'])
    assert.deepEqual(copied?.detail, { copy_source: '/my-bucket/reports/q2.csv', copy_source_rule: 'read-reports' })

    const seen = s3.received.length
    const refused = await refusal(() => client.send(new CopyObjectCommand({ Bucket: 'my-bucket', Key: 'uploads/stolen.csv', CopySource: 'other-bucket/private.csv' })))
    assert.equal(refused.$metadata.httpStatusCode, 403)
    assert.equal(refused.name, 'policy_denied')
    assert.match(refused.message, /^keyvalet: The copy source is outside the task grant: reading \/other-bucket\/private\.csv is not allowed \(copy_source_no_rule_for_path\)\.$/)
    assert.equal(s3.received.length, seen, 'S3 saw nothing')
    assert.equal(s3.objects.has('my-bucket/uploads/stolen.csv'), false)
    const record = (await kv.audit()).at(-1)
    assert.deepEqual([record?.decision, record?.error, (record?.detail as { copy_source?: string } | undefined)?.copy_source], ['deny', 'policy_denied', '/other-bucket/private.csv'])
    // The record states the decision that refused: the copy source's reason and rule (none matched it), not the destination's rule_matched.
    assert.deepEqual([record?.reason, record?.rule, (record?.detail as { destination_rule?: string } | undefined)?.destination_rule], ['copy_source_no_rule_for_path', null, 'write-uploads'])
    const ambiguous = await refusal(() => client.send(new CopyObjectCommand({ Bucket: 'my-bucket', Key: 'uploads/x.csv', CopySource: 'my-bucket/reports/..%2F..%2Fother-bucket/private.csv' })))
    assert.equal(ambiguous.$metadata.httpStatusCode, 400)
    assert.equal(s3.received.length, seen)
  })

  it('S3 headers that change access or meaning (ACL, grants, redirect, encryption, tagging, lock, storage class) are refused unless the rule names them: S3 sees nothing', async () => {
    const from = s3.received.length
    const put = { Bucket: 'my-bucket', Key: 'uploads/public.txt', Body: 'made public?' }
    const attempts: [string, Partial<ConstructorParameters<typeof PutObjectCommand>[0]>][] = [
      ['x-amz-acl', { ACL: 'public-read' }],
      ['x-amz-grant-read', { GrantRead: 'uri="http://acs.amazonaws.com/groups/global/AllUsers"' }],
      ['x-amz-website-redirect-location', { WebsiteRedirectLocation: 'https://evil.example/' }],
      ['x-amz-server-side-encryption', { ServerSideEncryption: 'aws:kms' }],
      ['x-amz-tagging', { Tagging: 'retention=none' }],
      ['x-amz-object-lock-legal-hold', { ObjectLockLegalHoldStatus: 'ON' }],
      ['x-amz-storage-class', { StorageClass: 'DEEP_ARCHIVE' }],
    ]
    for (const [header, extra] of attempts) {
      const err = await refusal(() => client.send(new PutObjectCommand({ ...put, ...extra })))
      assert.equal(err.$metadata.httpStatusCode, 403, header)
      assert.equal(err.name, 'policy_denied')
      assert.equal(err.message, `keyvalet: The ${header} header changes what the upstream does, and no rule allowing this request names it (header_not_named).`)
      const record = (await kv.audit()).at(-1)
      assert.deepEqual([record?.decision, record?.reason, record?.rule, record?.error, (record?.detail as { header?: string } | undefined)?.header], ['deny', 'header_not_named', 'write-uploads', 'policy_denied', header])
      assert.match(String((record?.detail as { why?: string } | undefined)?.why), new RegExp(`^rule write-uploads does not name header "${header}", which `))
    }
    assert.equal(s3.received.length, from, 'S3 saw none of them')
    assert.equal(s3.objects.has('my-bucket/uploads/public.txt'), false)

    // A rule that names the header lets through the values it allows, and only those.
    await client.send(new PutObjectCommand({ Bucket: 'my-bucket', Key: 'shared/report.csv', Body: 'for the bucket owner', ACL: 'bucket-owner-full-control' }))
    assert.equal(s3.received.at(-1)?.headers['x-amz-acl'], 'bucket-owner-full-control')
    assertSignedByRealKeyOnly(from)
    assert.deepEqual((await kv.audit()).at(-1)?.rule, 'write-shared')
    const seen = s3.received.length
    const publicRead = await refusal(() => client.send(new PutObjectCommand({ Bucket: 'my-bucket', Key: 'shared/report.csv', Body: 'x', ACL: 'public-read' })))
    assert.equal(publicRead.$metadata.httpStatusCode, 403)
    assert.equal(s3.received.length, seen)
    const record = (await kv.audit()).at(-1)
    assert.deepEqual([record?.reason, record?.rule], ['header_not_allowed', 'write-shared'])
  })

  it('refuses presigned query signatures and signed chunks with a signed trailer with a clear error, S3 sees nothing', async () => {
    const from = s3.received.length
    const presigned = await request(`${kv.url}/s3/my-bucket/reports/q1.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=x&X-Amz-Signature=abc`, { headers: { authorization: rawAuth() } })
    const presignedBody = await presigned.body.text()
    assert.equal(presigned.statusCode, 400)
    assert.equal(presigned.headers['content-type'], 'application/xml')
    assert.match(presignedBody, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<Error><Code>request_unsupported<\/Code><Message>keyvalet: [^<]*Presigned[^<]*<\/Message><RequestId>req_[0-9a-z]+<\/RequestId><\/Error>$/)
    const chunked = await request(`${kv.url}/s3/my-bucket/uploads/c.bin`, { method: 'PUT', headers: { authorization: rawAuth(), 'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER', 'content-encoding': 'aws-chunked', 'x-amz-trailer': 'x-amz-checksum-crc32' }, body: '0;chunk-signature=00\r\n\r\n' })
    const chunkedBody = await chunked.body.text()
    assert.equal(chunked.statusCode, 400)
    assert.match(chunkedBody, /<Code>request_unsupported<\/Code><Message>keyvalet: [^<]*signed chunks/)
    // A trailer is inside the body, past the rules: only checksums may be named there.
    const trailer = await request(`${kv.url}/s3/my-bucket/uploads/t.bin`, { method: 'PUT', headers: { authorization: rawAuth(), 'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER', 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': '0', 'x-amz-trailer': 'x-amz-checksum-crc32, x-amz-acl' }, body: '0\r\nx-amz-acl:public-read\r\n\r\n' })
    assert.equal(trailer.statusCode, 400)
    assert.match(await trailer.body.text(), /<Code>request_unsupported<\/Code><Message>keyvalet: x-amz-trailer may only name x-amz-checksum-\* trailers\.<\/Message>/)
    assert.equal(s3.received.length, from)
    const records = (await kv.audit()).slice(-3, -1)
    assert.equal((await kv.audit()).at(-1)?.detail?.['why'], 'aws_trailer_not_checksum')
    assert.deepEqual(records.map((r) => [r.error, (r.detail as { why?: string } | undefined)?.why]), [['request_unsupported', 'aws_presigned_query'], ['request_unsupported', 'aws_signed_chunks']])
    // Refused after the policy allowed them: the reason is the refusal's, the rule the one that allowed the request.
    assert.deepEqual(records.map((r) => [r.decision, r.reason, r.rule]), [['deny', 'request_unsupported', 'read-reports'], ['deny', 'request_unsupported', 'write-uploads']])
  })

  it('a streamed body without x-amz-content-sha256: refused, unless the connector allows UNSIGNED-PAYLOAD', async () => {
    const from = s3.received.length
    const body = () => Readable.from([Buffer.from('streamed '), Buffer.from('body')])
    const refused = await request(`${kv.url}/s3/my-bucket/uploads/s.txt`, { method: 'PUT', headers: { authorization: rawAuth() }, body: body() })
    await refused.body.dump()
    assert.equal(refused.statusCode, 400)
    assert.equal(s3.received.length, from)
    const sent = await request(`${kv.url}/s3-unsigned/my-bucket/uploads/s.txt`, { method: 'PUT', headers: { authorization: rawAuth() }, body: body() })
    await sent.body.dump()
    assert.equal(sent.statusCode, 200)
    assert.equal(s3.received.at(-1)?.headers['x-amz-content-sha256'], 'UNSIGNED-PAYLOAD')
    assert.equal(s3.objects.get('my-bucket/uploads/s.txt')?.toString(), 'streamed body')
    assertSignedByRealKeyOnly(from)
    const records = (await kv.audit()).slice(-2)
    assert.deepEqual(records.map((r) => [r.connector, r.error, r.upstream_status]), [['s3', 'request_unsupported', null], ['s3-unsigned', null, 200]])
  })

  it('a malformed vault secret fails closed with credential_unavailable', async () => {
    const from = s3.received.length
    const broken = new S3Client({ endpoint: `${kv.url}/s3-broken`, forcePathStyle: true, region: REGION, maxAttempts: 1, credentials: { accessKeyId: key, secretAccessKey: DUMMY_SECRET } })
    try {
      const err = await refusal(() => broken.send(new GetObjectCommand({ Bucket: 'my-bucket', Key: 'reports/q1 (final).csv' })))
      assert.equal(err.$metadata.httpStatusCode, 502)
    } finally {
      broken.destroy()
    }
    assert.equal(s3.received.length, from)
    const record = (await kv.audit()).at(-1)
    assert.equal(record?.error, 'credential_unavailable')
    assert.deepEqual([record?.decision, record?.reason, record?.rule], ['error', 'credential_unavailable', 'read-reports'])
    assert.equal((record?.detail as { why?: string } | undefined)?.why, 'aws_secret_malformed')
    assert.ok(!JSON.stringify(record).includes(REAL.secretAccessKey))
  })
})

describe('aws_sigv4 configuration errors are located', () => {
  const config = (credential: string) => `version: 1
listen: { gateway: "127.0.0.1:0" }
connectors:
  s3:
    upstream: https://s3.eu-west-1.amazonaws.com
    credential:
      ${credential}
    rules: [{ id: read, methods: [GET], path: "/my-bucket/**", severity: read }]
`
  const problem = (text: string): string => {
    try {
      parseConfig(text, 'keyvalet.yaml')
    } catch (err) {
      return (err as Error).message
    }
    throw new Error('expected a configuration error')
  }

  it('names file:line:field for a missing aws.region', () => {
    assert.match(problem(config('{ secret: aws-prod, inject: aws_sigv4, aws: { service: s3 } }')), /keyvalet\.yaml:7: connectors\.s3\.credential\.aws: missing required field region/)
  })

  it('requires aws for inject: aws_sigv4 and refuses it for other kinds', () => {
    assert.match(problem(config('{ secret: aws-prod, inject: aws_sigv4 }')), /keyvalet\.yaml:6: connectors\.s3\.credential: missing required field aws \(for inject: aws_sigv4\)/)
    assert.match(problem(config('{ secret: t, inject: bearer, aws: { service: s3, region: eu-west-1 } }')), /keyvalet\.yaml:7: connectors\.s3\.credential\.aws: only applies to inject: aws_sigv4/)
    assert.match(problem(config('{ secret: aws-prod, inject: aws_sigv4, aws: { service: S3!, region: eu-west-1 } }')), /connectors\.s3\.credential\.aws\.service: must be an AWS signing name/)
  })
})
