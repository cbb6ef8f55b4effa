/**
 * The streamed upload (or download), in its own process: fork it, send one UploadJob over IPC,
 * receive one UploadResult. The upload's body is generated on the fly (one chunk buffer, reused),
 * never held whole; the download's is counted and dropped as it arrives.
 */

import { Readable } from 'node:stream'
import { Agent, request } from 'undici'

export interface UploadJob {
  readonly url: string
  readonly headers: Record<string, string>
  readonly bytes: number
  readonly chunkBytes: number
  /** download: GET `url` (the bench upstream's …/download/N) and count the body instead of sending one. */
  readonly direction?: 'upload' | 'download'
}

export interface UploadResult {
  readonly status: number
  readonly seconds: number
  readonly mibPerS: number
  /** Upload: what the upstream said it received (`{"bytes":N}`), undefined when the answer was not that. Download: the body bytes received. */
  readonly upstreamBytes: number | undefined
  readonly responseText: string
}

async function* generate(total: number, chunkBytes: number): AsyncGenerator<Buffer> {
  const chunk = Buffer.alloc(chunkBytes)
  for (let i = 0; i < chunk.length; i++) chunk[i] = 0x61 + (i % 26) // a..z: no secret can appear in it
  let left = total
  while (left > 0) {
    const n = Math.min(left, chunkBytes)
    left -= n
    yield n === chunkBytes ? chunk : chunk.subarray(0, n)
  }
}

export async function upload(job: UploadJob): Promise<UploadResult> {
  const dispatcher = new Agent({ headersTimeout: 180_000, bodyTimeout: 180_000 })
  try {
    const t0 = process.hrtime.bigint()
    if (job.direction === 'download') {
      const res = await request(job.url, { method: 'GET', dispatcher, headers: job.headers })
      let received = 0
      for await (const chunk of res.body) received += (chunk as Buffer).length
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9
      return { status: res.statusCode, seconds, mibPerS: received / (1024 * 1024) / seconds, upstreamBytes: received, responseText: '' }
    }
    const res = await request(job.url, {
      method: 'PUT',
      dispatcher,
      headers: { ...job.headers, 'content-type': 'application/octet-stream', 'content-length': String(job.bytes) },
      body: Readable.from(generate(job.bytes, job.chunkBytes), { objectMode: false }),
    })
    const responseText = await res.body.text()
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9
    let upstreamBytes: number | undefined
    try {
      const parsed = JSON.parse(responseText) as { bytes?: unknown }
      if (typeof parsed.bytes === 'number') upstreamBytes = parsed.bytes
    } catch {
      upstreamBytes = undefined
    }
    return { status: res.statusCode, seconds, mibPerS: job.bytes / (1024 * 1024) / seconds, upstreamBytes, responseText: responseText.slice(0, 500) }
  } finally {
    await dispatcher.close()
  }
}

if (import.meta.main) {
  process.once('message', (job: UploadJob) => {
    upload(job).then((result) => {
      process.send?.({ event: 'result', result }, () => process.exit(0))
    }, (err: unknown) => {
      process.send?.({ event: 'error', error: err instanceof Error ? err.stack ?? err.message : String(err) }, () => process.exit(1))
    })
  })
  process.on('disconnect', () => process.exit(0))
}
