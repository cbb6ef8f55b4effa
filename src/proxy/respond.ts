import type { OutgoingHttpHeaders } from 'node:http'
import type { SandboxResponse } from './exchange.ts'
import { pipeline, type Readable } from 'node:stream'
import { createBrotliDecompress, createGunzip, createInflate, createZstdDecompress } from 'node:zlib'
import { KeyvaletError } from '../errors.ts'
import type { RequestContext, UpstreamResponse } from './context.ts'
import { inboundResponseHeaders } from './headers.ts'
import type { MaskPatterns } from '../redact/patterns.ts'
import { Redactor, type Emit } from '../redact/redactor.ts'
import { maskHeaders, requestMask } from './request-mask.ts'
import { upstreamError } from './upstream-errors.ts'
import { REQUEST_ID_HEADER } from './error-reply.ts'
import { UsageMeter } from '../budgets/usage.ts'
import { takeStatusFields } from './grpc.ts'

const DECODERS: Record<string, () => NodeJS.ReadWriteStream> = {
  gzip: createGunzip, 'x-gzip': createGunzip, deflate: createInflate, br: createBrotliDecompress, zstd: createZstdDecompress,
}

/**
 * Relays the upstream response to the sandbox: hop-by-hop headers dropped, every form of the
 * injected secret masked in headers and body (a coded body is decoded first so nothing hides in
 * it), bytes counted.
 *
 * `beforeEnd` (the audit write) completes before the sandbox can hold the whole response: a
 * response without a body is sent only after it; with a declared length, the last byte waits for
 * it; otherwise (chunked) the terminating chunk does. `beforeStream` (the open record) completes
 * before the head of an event stream (text/event-stream) is sent.
 */
export async function relayResponse(ctx: RequestContext, res: SandboxResponse, upstream: UpstreamResponse, beforeEnd: () => Promise<void>, beforeStream?: () => Promise<void>): Promise<void> {
  ctx.upstreamStatus = upstream.statusCode
  const mask = requestMask(ctx)
  const headers = inboundResponseHeaders(upstream.headers)
  let body: Readable = upstream.body
  let masking: Masking | undefined
  // A failure of what is relayed: the upstream's (a reset, bad framing), or the decoder's own.
  let bodyError = (err: unknown): KeyvaletError => upstreamError(err)
  const usage = ctx.connector?.usage
  const meter = usage === undefined ? undefined : new UsageMeter(isEventStream(headers))
  if (!mask.empty) ctx.redactions += maskHeaders(headers, mask)
  // Trailers reach an HTTP/2 client (gRPC's status travels in them); HTTP/1.1 answers go without, as before.
  const h2 = ctx.req.httpVersionMajor === 2
  const statusTrailers = h2 ? takeStatusFields(headers) : {}
  const sendTrailers = (): void => {
    if (!h2) return
    const trailers = { ...statusTrailers, ...inboundResponseHeaders(upstream.trailers ?? {}) }
    if (Object.keys(trailers).length === 0) return
    if (!mask.empty) ctx.redactions += maskHeaders(trailers, mask)
    res.addTrailers(trailers)
  }
  // A coded body is decoded to be masked or metered: nothing hides in it, and asking for gzip does not escape a token budget.
  if (!mask.empty || meter !== undefined) {
    const coding = String(headers['content-encoding'] ?? 'identity').toLowerCase().trim()
    if (coding !== 'identity') {
      const decoder = DECODERS[coding]
      if (decoder === undefined) {
        discard(upstream.body)
        throw new KeyvaletError('upstream_response_invalid', { detail: { content_encoding: coding.slice(0, 40) } })
      }
      body = pipeline(upstream.body, decoder(), () => {}) as unknown as Readable
      bodyError = (err) => upstream.body.errored !== null
        ? upstreamError(upstream.body.errored)
        : new KeyvaletError('upstream_response_invalid', { detail: { why: 'content_decoding', content_encoding: coding.slice(0, 40) }, cause: err })
      delete headers['content-encoding']
      delete headers['content-length']
    }
    if (!mask.empty) masking = new Masking(mask)
  }
  headers[REQUEST_ID_HEADER] = ctx.id
  if (isBodyless(ctx.req.method, upstream.statusCode, headers)) {
    await upstream.body.dump()
    await beforeEnd()
    res.writeHead(upstream.statusCode, headers)
    sendTrailers()
    res.end()
    return
  }
  if (beforeStream !== undefined && isEventStream(headers)) {
    try {
      await beforeStream()
      if (ctx.signal?.aborted === true) throw ctx.signal.reason
    } catch (err) {
      discard(upstream.body)
      throw err
    }
  }
  res.writeHead(upstream.statusCode, headers)
  // A stream (no length: SSE, chunked) or a large body: send the head now, since its first bytes
  // may come much later. A small fixed-length body goes with the head: in one write when it came
  // in one piece (pump holds it whole), else the head shares the first piece's packet.
  const length = headers['content-length']
  if (length === undefined || Number(length) > 65_536) res.flushHeaders()
  let tail: Buffer
  try {
    tail = await pump(body, ctx, res, masking, meter, length === undefined ? undefined : Number(length), bodyError)
  } finally {
    if (masking !== undefined) ctx.redactions += masking.count
    if (meter !== undefined && usage !== undefined) {
      const reported = meter.end(usage)
      if (reported !== undefined) ctx.usage = reported
    }
  }
  await beforeEnd()
  sendTrailers()
  res.end(tail)
}

/** What pump returns when no byte is held back: shared, never written to. */
const NOTHING_HELD: Buffer = Buffer.alloc(0)

function isEventStream(headers: OutgoingHttpHeaders): boolean {
  return String(headers['content-type'] ?? '').trim().toLowerCase().startsWith('text/event-stream')
}

function isBodyless(method: string | undefined, status: number, headers: OutgoingHttpHeaders): boolean {
  return method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200) || headers['content-length'] === '0'
}

/**
 * A body's redaction, begun at the first chunk in which a form of the secrets may begin: until
 * then no occurrence can be under way, so the chunks before it pass as they are, and the usual
 * clean response costs one table look-up per byte and no Redactor.
 */
export class Masking {
  readonly #mask: MaskPatterns
  #redactor: Redactor | undefined

  constructor(mask: MaskPatterns) {
    this.#mask = mask
  }

  get count(): number {
    return this.#redactor?.count ?? 0
  }

  push(chunk: Buffer, emit: Emit): void {
    if (this.#redactor === undefined) {
      if (!this.#mask.mayOccurIn(chunk)) return emit(chunk)
      this.#redactor = new Redactor(this.#mask)
    }
    this.#redactor.push(chunk, emit)
  }

  flush(emit: Emit): void {
    this.#redactor?.flush(emit)
  }
}

/**
 * Copies body → response with backpressure, masking (and metering model usage) as it goes; rejects with the body's failure
 * (as `bodyError` names it), or with the reason the request was aborted (the client went away,
 * the connection went idle: ctx.signal). With a declared `length`, the final byte is not written
 * but returned, for the caller to send once the audit record is committed; a body that arrives in
 * one piece is returned whole, so that it leaves with the head in one write.
 */
function pump(body: Readable, ctx: RequestContext, res: SandboxResponse, masking: Masking | undefined, meter: UsageMeter | undefined, length: number | undefined, bodyError: (err: unknown) => KeyvaletError): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const signal = ctx.signal
    const onAbort = (): void => fail(signal?.reason)
    const onClose = (): void => {
      if (!res.writableFinished) fail(signal?.aborted === true ? signal.reason : new KeyvaletError('client_closed'))
    }
    const fail = (err: unknown): void => {
      cleanup()
      discard(body)
      reject(err)
    }
    if (signal?.aborted === true) return onAbort()
    let held = NOTHING_HELD
    const send = (out: Buffer): void => {
      if (out.length === 0) return
      const first = ctx.bytesOut === 0
      ctx.bytesOut += out.length
      if (first && length !== undefined && ctx.bytesOut >= length) {
        held = out
        return
      }
      if (length !== undefined && ctx.bytesOut >= length) {
        held = Buffer.from(out.subarray(out.length - 1))
        out = out.subarray(0, out.length - 1)
      }
      if (out.length > 0 && !res.write(out)) body.pause()
    }
    const onData = (chunk: Buffer): void => {
      meter?.push(chunk)
      if (masking === undefined) send(chunk)
      else masking.push(chunk, send)
    }
    const onDrain = (): void => { body.resume() }
    const onEnd = (): void => {
      cleanup()
      masking?.flush(send)
      resolve(held)
    }
    const onError = (err: unknown): void => fail(bodyError(err))
    function cleanup(): void {
      body.off('data', onData).off('end', onEnd).off('error', onError)
      res.off('drain', onDrain).off('close', onClose)
      signal?.removeEventListener('abort', onAbort)
    }
    body.on('data', onData).on('end', onEnd).on('error', onError)
    res.on('drain', onDrain).on('close', onClose)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** Destroys a body we no longer read; undici reports that as an abort error nobody needs to hear. */
function discard(body: Readable): void {
  body.on('error', () => {})
  body.destroy()
}
