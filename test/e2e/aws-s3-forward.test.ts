import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startS3Server, type S3Server } from '../helpers/s3-server.ts'
import { upstreamCertificate } from '../helpers/tls.ts'

const REAL = { accessKeyId: 'AKIAREALFORWARDKEY01', secretAccessKey: 'forward/Real+Secret0123456789abcdefghijKLMN' }
const DUMMY = { id: 'AKIADUMMYSANDBOX0000', secret: 'dummy-sandbox-secret-0000' }
const HOST = 's3.eu-west-1.amazonaws.test'
const REGION = 'eu-west-1'
const CLIENT = fileURLToPath(new URL('../helpers/s3-client.ts', import.meta.url))
const BIG = 8 * 1024 * 1024

interface Line { readonly type: string; readonly [k: string]: unknown }

/** Runs the SDK client as a child process (keyvalet runs in this one). Bounded: killed after 20 s. */
function runClient(args: string[], env: NodeJS.ProcessEnv): Promise<{ line: Line | undefined; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLIENT, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    child.stdout.on('data', (c: Buffer) => { if (stdout.length < 20_000) stdout += c.toString() })
    child.stderr.on('data', (c: Buffer) => { if (stderr.length < 20_000) stderr += c.toString() })
    child.on('error', reject)
    child.on('close', () => {
      clearTimeout(timer)
      const first = stdout.split('\n')[0] ?? ''
      resolve({ line: first === '' ? undefined : (JSON.parse(first) as Line), stderr })
    })
  })
}

describe('aws_sigv4: the AWS SDK v3 S3 client through the forward proxy (HTTPS intercepted), dummy keys only', () => {
  let s3: S3Server
  let dns: DnsServer
  let kv: TestKeyvalet
  let key: string
  let env: NodeJS.ProcessEnv
  let endpoint: string

  before(async () => {
    const cert = upstreamCertificate(HOST)
    s3 = await startS3Server({ keys: REAL, region: REGION, tls: cert.tls })
    dns = await startDnsServer({ [HOST]: { a: ['127.0.0.1'] } })
    endpoint = `https://${HOST}:${new URL(s3.url).port}`
    kv = await startKeyvalet(`version: 1
listen: { gateway: "127.0.0.1:0", forward: "127.0.0.1:0" }
dns: { servers: ["${dns.address}"] }
connectors:
  s3:
    upstream: ${endpoint}
    ca_file: s3-ca.pem
    allow_addresses: [127.0.0.1/32]
    credential: { secret: aws-prod, inject: aws_sigv4, aws: { service: s3, region: ${REGION} } }
    rules:
      - { id: read-reports, methods: [GET], path: "/my-bucket/reports/**", severity: read }
      - { id: write-uploads, methods: [PUT], path: "/my-bucket/uploads/**", severity: write }
`, { files: { 's3-ca.pem': cert.caPem } })
    await kv.setSecret('aws-prod', JSON.stringify({ access_key_id: REAL.accessKeyId, secret_access_key: REAL.secretAccessKey }))
    key = (await kv.mintKey(['s3:write'])).key
    assert.ok(kv.forwardUrl !== undefined && kv.caCertPem !== undefined)
    const caFile = join(kv.dir, 'keyvalet-ca.pem')
    writeFileSync(caFile, kv.caCertPem)
    // The sandbox: the proxy with the task key, keyvalet's CA, dummy AWS keys.
    env = {
      PATH: process.env.PATH,
      HTTPS_PROXY: `http://task:${key}@127.0.0.1:${new URL(kv.forwardUrl).port}`,
      NO_PROXY: '',
      NODE_EXTRA_CA_CERTS: caFile,
      AWS_ACCESS_KEY_ID: DUMMY.id,
      AWS_SECRET_ACCESS_KEY: DUMMY.secret,
      AWS_REGION: REGION,
    }
  })

  after(async () => {
    await kv?.close()
    await s3?.close()
    await dns?.close()
  })

  it(`PutObject of ${BIG / 1024 / 1024} MiB (streamed, unsigned chunks over HTTPS) and GetObject, signed by the real key`, async () => {
    const from = s3.received.length
    const put = await runClient([endpoint, 'put', 'my-bucket', 'uploads/big.bin', String(BIG)], env)
    assert.equal(put.line?.type, 'put', put.stderr)
    const stored = s3.objects.get('my-bucket/uploads/big.bin') ?? Buffer.alloc(0)
    assert.equal(stored.length, BIG)
    assert.equal(createHash('sha256').update(stored).digest('hex'), put.line?.sha256)
    s3.objects.set('my-bucket/reports/r.txt', Buffer.from('report body'))
    const get = await runClient([endpoint, 'get', 'my-bucket', 'reports/r.txt'], env)
    assert.deepEqual(get.line, { type: 'get', body: 'report body' })
    const seen = s3.received.slice(from)
    assert.equal(seen.length, 2)
    assert.equal(seen[0]?.headers['x-amz-content-sha256'], 'STREAMING-UNSIGNED-PAYLOAD-TRAILER', 'what the SDK sends for a stream over HTTPS')
    for (const r of seen) {
      assert.equal(r.refused, undefined)
      assert.match(String(r.headers.authorization), new RegExp(`^AWS4-HMAC-SHA256 Credential=${REAL.accessKeyId}/`))
      const all = JSON.stringify(r.headers)
      assert.ok(!all.includes(DUMMY.id) && !all.includes(DUMMY.secret) && !all.includes(key))
      assert.equal(r.headers['proxy-authorization'], undefined)
    }
    const records = (await kv.audit()).slice(-2)
    assert.deepEqual(records.map((r) => [r.mode, r.decision, r.rule, r.credential, r.upstream_status]), [['forward', 'allow', 'write-uploads', 'aws-prod', 200], ['forward', 'allow', 'read-reports', 'aws-prod', 200]])
  })

  it('a bucket outside the rules: 403 from keyvalet, S3 sees nothing', async () => {
    const from = s3.received.length
    const got = await runClient([endpoint, 'get', 'other-bucket', 'reports/r.txt'], env)
    assert.equal(got.line?.type, 'error')
    assert.equal(got.line?.status, 403)
    assert.equal(s3.received.length, from)
    const record = (await kv.audit()).at(-1)
    assert.deepEqual([record?.mode, record?.error, record?.path], ['forward', 'policy_denied', '/other-bucket/reports/r.txt'])
  })
})
