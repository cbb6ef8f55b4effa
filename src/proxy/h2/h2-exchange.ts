import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'
import type { ServerHttp2Stream } from 'node:http2'
import type { SandboxRequest, SandboxResponse } from '../exchange.ts'

/**
 * An HTTP/2 stream as the pipeline's request (exchange.ts SandboxRequest): the stream itself,
 * dressed with the fields the pipeline reads of a request. It is its own body, read straight from
 * nghttp2, where Node's compatibility request would re-emit every chunk through a second stream.
 * `socket` is the stream: what the request is known by while in flight, and what ends it.
 */
export interface H2Request extends SandboxRequest {
  readonly headers: IncomingHttpHeaders
}

export function h2Request(stream: ServerHttp2Stream, nodeHeaders: IncomingHttpHeaders): H2Request {
  const headers = ownHeaders(nodeHeaders)
  const fields: Omit<H2Request, keyof ServerHttp2Stream | 'complete'> & { trailers: NodeJS.Dict<string> } = {
    headers,
    method: headers[':method'] as string | undefined,
    url: headers[':path'] as string | undefined,
    httpVersionMajor: 2,
    trailers: {},
    socket: stream,
  }
  const req = Object.assign(stream, fields)
  Object.defineProperty(req, 'complete', { get: isComplete })
  // A trailer section ends the body (it comes once): kept for the pipeline to refuse (forward.ts trailersRefusal).
  stream.on('trailers', keepTrailers)
  // A stream's failure (a reset, the connection gone) is read from its state and its 'close', as
  // over HTTP/1.1; left unheard, an 'error' event would end the process.
  stream.on('error', ignore)
  return req as unknown as H2Request
}

/** What a request's headers inherit: nothing, as of Node's own null-prototype object. */
const NOTHING_INHERITED: object = Object.freeze(Object.create(null))

/**
 * The stream's header fields, as the pipeline reads them. Node gives them as a null-prototype
 * object literal, which V8 keeps in dictionary mode: each of the pipeline's many reads of it
 * (route, decide, inject, decided_on, the audit) would be a hash lookup and each walk over it
 * slow. The copy has the same fields in the same order, in fast mode, and inherits nothing either.
 */
function ownHeaders(nodeHeaders: IncomingHttpHeaders): IncomingHttpHeaders {
  const headers = Object.create(NOTHING_INHERITED) as IncomingHttpHeaders
  for (const name in nodeHeaders) headers[name] = nodeHeaders[name]
  return headers
}

function keepTrailers(this: { trailers: NodeJS.Dict<string> }, trailers: IncomingHttpHeaders): void {
  this.trailers = trailers as NodeJS.Dict<string>
}

function isComplete(this: ServerHttp2Stream): boolean {
  return this.readableEnded || this.closed || this.destroyed
}

function ignore(): void {}

/**
 * The answer to an HTTP/2 stream, on Node's core stream API (exchange.ts SandboxResponse).
 *
 * The head is held until the first bytes of the body, or the end, need it to go: a response that
 * ends at once (the usual small answer, or one with no body) then leaves as HEADERS and DATA with
 * END_STREAM, or HEADERS alone with END_STREAM, and asks nghttp2 for a trailer round only when it
 * has trailers to send. A head that must leave before the end (flushHeaders, or a body written in
 * pieces) cannot know yet whether trailers will follow (an upstream's arrive after its body), so
 * it always waits for them, and ends with an empty DATA frame when there are none.
 * `headersSent` is true from writeHead on, as node:http's is: the head is decided then, and an
 * error after it cuts the stream rather than answering a second head.
 */
export class H2Response implements SandboxResponse {
  readonly req: SandboxRequest
  statusCode = 200
  readonly #stream: ServerHttp2Stream
  #headers: OutgoingHttpHeaders | undefined
  #trailers: OutgoingHttpHeaders | undefined
  #headWritten = false

  constructor(stream: ServerHttp2Stream, req: SandboxRequest) {
    this.#stream = stream
    this.req = req
  }

  get headersSent(): boolean {
    return this.#headWritten || this.#stream.headersSent
  }

  get writableFinished(): boolean {
    return this.#stream.writableFinished
  }

  /** Takes `headers` as its own (no copy): the caller does not change them after. */
  writeHead(statusCode: number, headers?: OutgoingHttpHeaders): this {
    if (this.headersSent) throw new Error('writeHead after the head was written')
    this.statusCode = statusCode
    if (headers !== undefined) this.#headers = this.#headers === undefined ? headers : Object.assign(this.#headers, headers)
    this.#headWritten = true
    return this
  }

  setHeader(name: string, value: string): this {
    if (this.headersSent) throw new Error('setHeader after the head was written')
    this.#headers ??= {}
    this.#headers[name.toLowerCase()] = value
    return this
  }

  flushHeaders(): void {
    this.#send(false, true)
  }

  write(chunk: Buffer): boolean {
    this.#send(false, true)
    return this.#stream.write(chunk)
  }

  end(chunk?: Buffer | string): this {
    const empty = chunk === undefined || chunk.length === 0
    this.#send(empty && this.#trailers === undefined, this.#trailers !== undefined)
    if (!this.#stream.writableEnded && !this.#stream.destroyed) {
      if (empty) this.#stream.end()
      else this.#stream.end(chunk)
    }
    return this
  }

  addTrailers(trailers: OutgoingHttpHeaders): void {
    this.#trailers = this.#trailers === undefined ? trailers : Object.assign(this.#trailers, trailers)
  }

  destroy(error?: Error): void {
    this.#stream.destroy(error)
  }

  on(event: 'close' | 'drain', listener: () => void): this {
    this.#stream.on(event, listener)
    return this
  }

  once(event: 'close' | 'drain', listener: () => void): this {
    this.#stream.once(event, listener)
    return this
  }

  off(event: 'close' | 'drain', listener: () => void): this {
    this.#stream.off(event, listener)
    return this
  }

  /** Sends the head, once; a stream already closed (the client reset it) takes nothing more. */
  #send(endStream: boolean, waitForTrailers: boolean): void {
    const stream = this.#stream
    if (stream.headersSent || stream.destroyed || stream.closed) return
    this.#headWritten = true
    const head = this.#headers ?? {}
    head[':status'] = this.statusCode
    if (waitForTrailers) stream.once('wantTrailers', () => this.#sendTrailers())
    stream.respond(head, { endStream, waitForTrailers })
  }

  #sendTrailers(): void {
    const stream = this.#stream
    if (stream.destroyed || stream.closed) return
    stream.sendTrailers(this.#trailers ?? {})
  }
}
