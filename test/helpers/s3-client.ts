/**
 * A sandboxed program using the official AWS SDK v3 S3 client with dummy keys from the
 * environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION): run as a child process by
 * test/e2e/aws-s3-forward.test.ts. `node s3-client.ts <endpoint> <put|get> <bucket> <key> [bytes]`.
 * The SDK's own agent does not read HTTPS_PROXY: it is given an agent that does (proxyEnv),
 * which is all a sandbox must add. Prints one JSON line: {type:'put'|'get'|'error', ...}.
 */
import { createHash } from 'node:crypto'
import { Agent } from 'node:https'
import { Readable } from 'node:stream'
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'

const [endpoint = '', op = '', bucket = '', key = '', size = '0'] = process.argv.slice(2)
const client = new S3Client({ endpoint, forcePathStyle: true, maxAttempts: 1, requestHandler: { httpsAgent: new Agent({ keepAlive: true, proxyEnv: process.env }) } })
const print = (value: unknown): void => void process.stdout.write(`${JSON.stringify(value)}\n`)

try {
  if (op === 'put') {
    const total = Number(size)
    const hash = createHash('sha256')
    async function* pieces(): AsyncGenerator<Buffer> {
      for (let sent = 0; sent < total; sent += 65536) {
        const piece = Buffer.alloc(Math.min(65536, total - sent), (sent / 65536) % 251)
        hash.update(piece)
        yield piece
      }
    }
    const r = await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: Readable.from(pieces()), ContentLength: total }))
    print({ type: 'put', etag: r.ETag, sha256: hash.digest('hex') })
  } else if (op === 'get') {
    const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
    print({ type: 'get', body: await r.Body?.transformToString() })
  } else {
    throw new Error(`unknown op ${op}`)
  }
} catch (err) {
  print({ type: 'error', name: (err as Error).name, status: (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode })
} finally {
  client.destroy()
}
