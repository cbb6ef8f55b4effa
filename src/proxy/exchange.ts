import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'
import type { Duplex, Readable } from 'node:stream'

/**
 * The request seam: what the pipeline reads of the sandbox's request. node:http's IncomingMessage
 * is one; an HTTP/2 stream dressed with these fields is the other (h2/h2-exchange.ts), so that its
 * body reaches the pipeline with no second stream in between. The request is its own body.
 */
export interface SandboxRequest extends Readable {
  readonly headers: IncomingHttpHeaders
  method?: string | undefined
  readonly url?: string | undefined
  readonly httpVersionMajor: number
  /** The whole request has arrived (HTTP/2: its stream's readable side has ended, or the stream is gone). */
  readonly complete: boolean
  /** The fields of a trailer section that ended the body, once it has (empty otherwise). */
  readonly trailers: NodeJS.Dict<string>
  /** What the request is known by while it is in flight: its connection over HTTP/1.1, its stream over HTTP/2. */
  readonly socket: Duplex
  /** HTTP/2: the HEADERS frame ended the stream (no body follows). */
  readonly endAfterHeaders?: boolean
}

/** The response seam: what the pipeline does with the answer to the sandbox. node:http's ServerResponse is one; h2/h2-exchange.ts's H2Response the other. */
export interface SandboxResponse {
  readonly req: SandboxRequest
  readonly headersSent: boolean
  readonly statusCode: number
  readonly writableFinished: boolean
  writeHead(statusCode: number, headers?: OutgoingHttpHeaders): this
  setHeader(name: string, value: string): this
  /** Sends the head now, when the body's first bytes may come much later. */
  flushHeaders(): void
  /** False when the sandbox is not reading fast enough: wait for 'drain'. */
  write(chunk: Buffer): boolean
  end(chunk?: Buffer | string): this
  /** Trailer fields sent after the body (HTTP/2 only; HTTP/1.1 answers go without). */
  addTrailers(trailers: OutgoingHttpHeaders): void
  destroy(error?: Error): unknown
  on(event: 'close' | 'drain', listener: () => void): this
  once(event: 'close' | 'drain', listener: () => void): this
  off(event: 'close' | 'drain', listener: () => void): this
}
