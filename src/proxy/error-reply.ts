import type { OutgoingHttpHeaders } from 'node:http'
import type { SandboxRequest, SandboxResponse } from './exchange.ts'
import { STATUS_CODES } from '../node-http.ts'
import type { Duplex } from 'node:stream'
import type { KeyvaletError } from '../errors.ts'
import type { RequestContext } from './context.ts'
import { isGrpcCall, renderGrpcError } from './grpc.ts'

export const ERROR_HEADER = 'x-keyvalet-error'
export const REQUEST_ID_HEADER = 'x-keyvalet-request-id'

/**
 * How a refusal is presented on a listener: the forward proxy answers authentication failures
 * with 407 and Proxy-Authenticate (so clients send the proxy credentials); the gateway with 401,
 * and `challenge` (WWW-Authenticate) when the request has one.
 */
export function presentation(mode: RequestContext['mode'], err: KeyvaletError, challenge?: string): { status: number; headers: OutgoingHttpHeaders } {
  if (err.retryAfterSeconds !== undefined) return { status: err.status, headers: { 'retry-after': String(err.retryAfterSeconds) } }
  if (err.reply !== undefined) return { status: err.reply.status, headers: {} }
  if (mode !== 'gateway' && err.status === 401) return { status: 407, headers: { 'proxy-authenticate': 'Basic realm="keyvalet", charset="UTF-8"' } }
  if (err.status === 401 && challenge !== undefined) return { status: 401, headers: { 'www-authenticate': challenge } }
  return { status: err.status, headers: {} }
}

/**
 * How an error body is written: JSON, or S3's XML error document for connectors an AWS SDK talks
 * to (the SDK parses only that, and then reports keyvalet's code as the error's name and its
 * message as the error's message, instead of an XML parse error); or, for a gRPC call, a gRPC
 * status in trailers (grpc.ts), the only refusal a gRPC client can read.
 */
export type ErrorFormat = 'json' | 'aws-xml' | 'grpc'

export function errorFormat(ctx: Pick<RequestContext, 'connector' | 'req'>): ErrorFormat {
  if (isGrpcCall(ctx)) return 'grpc'
  return ctx.connector?.credential?.kind === 'aws_sigv4' ? 'aws-xml' : 'json'
}

/** The one place a KeyvaletError becomes an HTTP response: JSON (or S3 XML, or a gRPC status), the code in a header, no stack. */
export function renderError(res: SandboxResponse, err: KeyvaletError, requestId: string, mode: RequestContext['mode'] = 'gateway', format: ErrorFormat = 'json', challenge?: string): void {
  const { status, headers } = presentation(mode, err, challenge)
  if (format === 'grpc') return renderGrpcError(res, err, status, { [ERROR_HEADER]: err.code, [REQUEST_ID_HEADER]: requestId })
  const body = err.reply?.body ?? (format === 'aws-xml' ? awsErrorBody(err, requestId) : errorBody(err, requestId))
  res.writeHead(status, {
    ...headers,
    'content-type': err.reply?.contentType ?? (format === 'aws-xml' ? 'application/xml' : 'application/json; charset=utf-8'),
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    [ERROR_HEADER]: err.code,
    [REQUEST_ID_HEADER]: requestId,
  })
  res.end(body)
}

/** The same error, written by hand on a socket that has no response object (parser errors, CONNECT, upgrades). */
export function writeRawError(socket: Duplex, err: KeyvaletError, requestId: string, mode: RequestContext['mode'] = 'gateway', challenge?: string): void {
  const { status, headers } = presentation(mode, err, challenge)
  const body = errorBody(err, requestId)
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${String(value)}\r\n`).join('')
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n${extra}content-type: application/json; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\n${ERROR_HEADER}: ${err.code}\r\n${REQUEST_ID_HEADER}: ${requestId}\r\n` +
      `connection: close\r\n\r\n${body}`,
  )
}

/**
 * Answers an error on a response: the error document while no head was sent (then the rest
 * of the sandbox's body is read off, bounded, so keep-alive survives); once the head was sent, the
 * connection is cut, so the sandbox sees an incomplete response rather than a short one that looks whole.
 */
export function answerError(res: SandboxResponse, err: KeyvaletError, requestId: string, mode: RequestContext['mode'], format: ErrorFormat = 'json', challenge?: string): void {
  if (res.headersSent) return void res.destroy()
  renderError(res, err, requestId, mode, format, challenge)
  drain(res.req)
}

/** Let a refused request's body be read off the socket so keep-alive survives, but bounded. */
function drain(req: SandboxRequest): void {
  if (req.complete) return
  let seen = 0
  req.on('data', (chunk: Buffer) => {
    seen += chunk.length
    if (seen > 1024 * 1024) req.destroy()
  })
  req.resume()
}

function awsErrorBody(err: KeyvaletError, requestId: string): string {
  const reason = err.code === 'policy_denied' && typeof err.detail?.reason === 'string' ? `<Reason>${xmlText(err.detail.reason)}</Reason>` : ''
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${err.code}</Code><Message>keyvalet: ${xmlText(err.message)}</Message>${reason}<RequestId>${xmlText(requestId)}</RequestId></Error>`
}

function xmlText(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`)
}

/** The JSON error document: `{ error: { code, message, [reason,] request_id } }` (the admin API answers the same). */
export function errorBody(err: KeyvaletError, requestId: string): string {
  const reason = err.code === 'policy_denied' && typeof err.detail?.reason === 'string' ? { reason: err.detail.reason } : {}
  return JSON.stringify({ error: { code: err.code, message: err.message, ...reason, request_id: requestId } })
}
