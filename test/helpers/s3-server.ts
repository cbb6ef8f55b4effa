import { createHash, createHmac } from 'node:crypto'
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { crc32 } from 'node:zlib'
import { parseRawQuery, smithyAuthorization, type OracleKeys } from './smithy-sigv4.ts'

/** What the S3 server saw of one request, whether or not it was accepted. */
export interface S3Received {
  readonly method: string
  /** Raw request target (path and query) as it arrived. */
  readonly url: string
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  /** Raw body bytes as they arrived (aws-chunked framing included). */
  readonly rawBytes: number
  /** undefined when the signature and payload verified; else the S3 error code sent back. */
  readonly refused: string | undefined
}

export interface S3Server {
  readonly url: string
  readonly received: S3Received[]
  /** "bucket/key" → object bytes. */
  readonly objects: Map<string, Buffer>
  close(): Promise<void>
}

const MAX_BODY = 64 * 1024 * 1024
const MAX_SKEW_MS = 15 * 60_000

/**
 * A path-style S3 endpoint on 127.0.0.1 that VERIFIES SigV4 as S3 does: it recomputes the
 * signature from what arrived (the signed headers, the path decoded and encoded once, the query)
 * with the real secret through @smithy/signature-v4, checks x-amz-content-sha256 against the
 * body, decodes aws-chunked bodies and checks their trailing CRC32. Answers PutObject, CopyObject,
 * GetObject and ListObjectsV2 (minimal XML); anything unverified gets 403 SignatureDoesNotMatch.
 */
export async function startS3Server(opts: { keys: OracleKeys; region: string; tls?: { key: string; cert: string } }): Promise<S3Server> {
  const received: S3Received[] = []
  const objects = new Map<string, Buffer>()
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size <= MAX_BODY) chunks.push(c)
    })
    req.on('end', () => {
      void (async () => {
        const raw = Buffer.concat(chunks)
        const outcome = size > MAX_BODY ? { error: 'EntityTooLarge' } : await verify(req, raw, opts)
        received.push({ method: req.method ?? '', url: req.url ?? '', headers: { ...req.headers }, rawBytes: size, refused: 'error' in outcome ? outcome.error : undefined })
        if ('error' in outcome) return xml(res, outcome.error === 'XAmzContentSHA256Mismatch' || outcome.error === 'InvalidChunk' ? 400 : 403, `<Error><Code>${outcome.error}</Code><Message>refused by the test S3 server</Message></Error>`)
        serve(req, res, outcome.body, objects)
      })()
    })
  }
  const server: Server = opts.tls === undefined ? createHttpServer(handler) : createHttpsServer(opts.tls, handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `${opts.tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    received,
    objects,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  }
}

type Verified = { body: Buffer } | { error: string }

async function verify(req: IncomingMessage, raw: Buffer, opts: { keys: OracleKeys; region: string }): Promise<Verified> {
  const auth = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=[0-9a-f]{64}$/.exec(req.headers.authorization ?? '')
  if (auth === null) return { error: 'AccessDenied' }
  const [, accessKeyId, , region, signedList = ''] = auth
  if (accessKeyId !== opts.keys.accessKeyId) return { error: 'InvalidAccessKeyId' }
  if (region !== opts.region) return { error: 'AuthorizationHeaderMalformed' }
  if (opts.keys.sessionToken !== undefined && req.headers['x-amz-security-token'] !== opts.keys.sessionToken) return { error: 'InvalidToken' }
  const amzDate = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(String(req.headers['x-amz-date'] ?? ''))
  if (amzDate === null) return { error: 'AccessDenied' }
  const [, y, mo, d, h, mi, s] = amzDate.map(Number) as number[]
  const date = new Date(Date.UTC(y ?? 0, (mo ?? 1) - 1, d, h, mi, s))
  if (Math.abs(date.getTime() - Date.now()) > MAX_SKEW_MS) return { error: 'RequestTimeTooSkewed' }
  const signed = signedList.split(';')
  for (const required of ['host', 'x-amz-date', 'x-amz-content-sha256']) if (!signed.includes(required)) return { error: 'AccessDenied' }
  const headers: Record<string, string> = {}
  for (const name of signed) {
    const value = req.headers[name]
    if (value === undefined) return { error: 'SignatureDoesNotMatch' }
    headers[name] = Array.isArray(value) ? value.join(',') : value
  }
  const url = req.url ?? '/'
  const q = url.indexOf('?')
  const rawPath = q === -1 ? url : url.slice(0, q)
  // S3 signs the path decoded, then each segment encoded once.
  const path = rawPath.split('/').map((seg) => encodeURIComponent(decodeURIComponent(seg)).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)).join('/')
  const expected = await smithyAuthorization(
    { method: req.method ?? 'GET', host: headers.host ?? '', path, query: parseRawQuery(q === -1 ? '' : url.slice(q + 1)), headers },
    opts.keys, { service: 's3', region: opts.region }, date, new Set(signed),
  )
  if (expected !== req.headers.authorization) return { error: 'SignatureDoesNotMatch' }
  const seed = /Signature=([0-9a-f]{64})$/.exec(expected)?.[1] ?? ''
  return payload(req, raw, { secret: opts.keys.secretAccessKey, amzDate: String(req.headers['x-amz-date']), region: opts.region, seed })
}

interface ChunkChain { readonly secret: string; readonly amzDate: string; readonly region: string; readonly seed: string }

function payload(req: IncomingMessage, raw: Buffer, chain: ChunkChain): Verified {
  const mode = String(req.headers['x-amz-content-sha256'])
  if (mode === 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD') return verifySignedChunks(req, raw, chain)
  if (/^[0-9a-f]{64}$/.test(mode)) return createHash('sha256').update(raw).digest('hex') === mode ? { body: raw } : { error: 'XAmzContentSHA256Mismatch' }
  if (mode === 'UNSIGNED-PAYLOAD') return { body: raw }
  if (mode === 'STREAMING-UNSIGNED-PAYLOAD-TRAILER' && String(req.headers['content-encoding']).split(',').map((s) => s.trim()).includes('aws-chunked')) return decodeAwsChunked(req, raw)
  return { error: 'InvalidArgument' }
}

/** `hex-size CRLF data CRLF` ... `0 CRLF` trailers `CRLF`; checks the decoded length and the x-amz-checksum-crc32 trailer. */
function decodeAwsChunked(req: IncomingMessage, raw: Buffer): Verified {
  const parts: Buffer[] = []
  let at = 0
  for (let guard = 0; guard < 1_000_000; guard++) {
    const eol = raw.indexOf('\r\n', at)
    if (eol === -1) return { error: 'InvalidChunk' }
    const size = Number.parseInt(raw.subarray(at, eol).toString('latin1').split(';')[0] ?? '', 16)
    if (!Number.isInteger(size) || size < 0) return { error: 'InvalidChunk' }
    at = eol + 2
    if (size === 0) break
    parts.push(raw.subarray(at, at + size))
    at += size
    if (raw.subarray(at, at + 2).toString('latin1') !== '\r\n') return { error: 'InvalidChunk' }
    at += 2
  }
  const body = Buffer.concat(parts)
  const trailers = raw.subarray(at).toString('latin1')
  if (!trailers.endsWith('\r\n\r\n') && trailers !== '\r\n') return { error: 'InvalidChunk' }
  if (String(body.length) !== req.headers['x-amz-decoded-content-length']) return { error: 'InvalidChunk' }
  const crc = /(?:^|\r\n)x-amz-checksum-crc32:([A-Za-z0-9+/=]+)\r\n/.exec(trailers)?.[1]
  if (req.headers['x-amz-trailer'] === 'x-amz-checksum-crc32') {
    const actual = Buffer.alloc(4)
    actual.writeUInt32BE(crc32(body))
    if (crc !== actual.toString('base64')) return { error: 'BadDigest' }
  }
  return { body }
}

/**
 * Signed chunks as S3 checks them: each `hex-size;chunk-signature=SIG CRLF data CRLF` must carry
 * HMAC(signing key, "AWS4-HMAC-SHA256-PAYLOAD" date scope previous-signature hash("") hash(data)),
 * chained from the request's signature; the final chunk is empty. Written here independently of
 * keyvalet's signer, from the S3 documentation.
 */
function verifySignedChunks(req: IncomingMessage, raw: Buffer, chain: ChunkChain): Verified {
  if (!String(req.headers['content-encoding']).split(',').map((c) => c.trim()).includes('aws-chunked')) return { error: 'InvalidArgument' }
  const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data).digest()
  const day = chain.amzDate.slice(0, 8)
  const key = hmac(hmac(hmac(hmac(`AWS4${chain.secret}`, day), chain.region), 's3'), 'aws4_request')
  const scope = `${day}/${chain.region}/s3/aws4_request`
  const hash = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex')
  const parts: Buffer[] = []
  let previous = chain.seed
  let at = 0
  for (let guard = 0; guard < 1_000_000; guard++) {
    const eol = raw.indexOf('\r\n', at)
    const header = /^([0-9a-f]+);chunk-signature=([0-9a-f]{64})$/.exec(eol === -1 ? '' : raw.subarray(at, eol).toString('latin1'))
    if (header === null) return { error: 'InvalidChunk' }
    const size = Number.parseInt(header[1] ?? '', 16)
    const data = raw.subarray(eol + 2, eol + 2 + size)
    const expected = hmac(key, ['AWS4-HMAC-SHA256-PAYLOAD', chain.amzDate, scope, previous, hash(''), hash(data)].join('\n')).toString('hex')
    if (header[2] !== expected) return { error: 'SignatureDoesNotMatch' }
    previous = expected
    at = eol + 2 + size
    if (raw.subarray(at, at + 2).toString('latin1') !== '\r\n') return { error: 'InvalidChunk' }
    at += 2
    if (size === 0) break
    parts.push(data)
  }
  if (at !== raw.length) return { error: 'InvalidChunk' }
  const body = Buffer.concat(parts)
  return String(body.length) === req.headers['x-amz-decoded-content-length'] ? { body } : { error: 'InvalidChunk' }
}

function serve(req: IncomingMessage, res: ServerResponse, body: Buffer, objects: Map<string, Buffer>): void {
  const url = new URL(req.url ?? '/', 'http://s3.invalid')
  const [, bucket = '', ...rest] = url.pathname.split('/').map(decodeURIComponent)
  const key = rest.join('/')
  const copySource = req.headers['x-amz-copy-source']
  if (req.method === 'PUT' && key !== '' && typeof copySource === 'string') {
    const source = objects.get(decodeURIComponent(copySource.replace(/^\//, '').split('?')[0] ?? ''))
    if (source === undefined) return xml(res, 404, '<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>')
    objects.set(`${bucket}/${key}`, source)
    return xml(res, 200, `<CopyObjectResult><ETag>"${createHash('md5').update(source).digest('hex')}"</ETag><LastModified>${new Date().toISOString()}</LastModified></CopyObjectResult>`)
  }
  if (req.method === 'PUT' && key !== '') {
    objects.set(`${bucket}/${key}`, body)
    res.writeHead(200, { etag: `"${createHash('md5').update(body).digest('hex')}"` })
    return void res.end()
  }
  if (req.method === 'GET' && key !== '') {
    const object = objects.get(`${bucket}/${key}`)
    if (object === undefined) return xml(res, 404, '<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>')
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': object.length })
    return void res.end(object)
  }
  if (req.method === 'GET' && key === '' && url.searchParams.get('list-type') === '2') {
    const prefix = url.searchParams.get('prefix') ?? ''
    const keys = [...objects.keys()].filter((k) => k.startsWith(`${bucket}/${prefix}`)).map((k) => k.slice(bucket.length + 1)).sort()
    const contents = keys.map((k) => `<Contents><Key>${escapeXml(k)}</Key><Size>${objects.get(`${bucket}/${k}`)?.length ?? 0}</Size></Contents>`).join('')
    return xml(res, 200, `<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${escapeXml(bucket)}</Name><Prefix>${escapeXml(prefix)}</Prefix><KeyCount>${keys.length}</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>${contents}</ListBucketResult>`)
  }
  xml(res, 501, '<Error><Code>NotImplemented</Code><Message>not in the test S3 server</Message></Error>')
}

function xml(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/xml' })
  res.end(`<?xml version="1.0" encoding="UTF-8"?>\n${body}`)
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`)
}
