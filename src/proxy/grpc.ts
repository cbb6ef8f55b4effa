import type { OutgoingHttpHeaders } from 'node:http'
import type { SandboxResponse } from './exchange.ts'
import type { KeyvaletError } from '../errors.ts'
import type { RequestContext } from './context.ts'

/**
 * gRPC over HTTP/2 (the protocol's HTTP mapping, PROTOCOL-HTTP2.md): a call's outcome travels as
 * `grpc-status` and `grpc-message` in trailers, and a client reads nothing else of an error. So a
 * refusal of a gRPC call is answered as a gRPC status, with keyvalet's code and message in
 * grpc-message; an HTTP error document would surface only as "UNKNOWN" or "INTERNAL".
 */

/** Whether the request is a gRPC call: over HTTP/2, content-type application/grpc (+proto, +json, ...). */
export function isGrpcCall(ctx: Pick<RequestContext, 'req'>): boolean {
  const type = ctx.req.headers['content-type']
  return ctx.req.httpVersionMajor === 2 && typeof type === 'string' && /^application\/grpc(?:[+;]|$)/i.test(type.trim())
}

/** The gRPC status code for keyvalet's HTTP status of a refusal (codes from grpc/status.h). */
export function grpcStatusFor(httpStatus: number): number {
  if (httpStatus === 401 || httpStatus === 407) return 16 // UNAUTHENTICATED
  if (httpStatus === 403) return 7 // PERMISSION_DENIED
  if (httpStatus === 404 || httpStatus === 405) return 12 // UNIMPLEMENTED
  if (httpStatus === 408 || httpStatus === 504) return 4 // DEADLINE_EXCEEDED
  if (httpStatus === 413 || httpStatus === 429) return 8 // RESOURCE_EXHAUSTED
  if (httpStatus === 499) return 1 // CANCELLED
  if (httpStatus === 500) return 13 // INTERNAL
  if (httpStatus >= 500) return 14 // UNAVAILABLE
  return 3 // INVALID_ARGUMENT
}

/**
 * A refusal as a gRPC status: HTTP 200, an empty body, trailers grpc-status and grpc-message
 * ("keyvalet <code>: <message> [(<reason>)]"), keyvalet's code and request id in the headers too.
 */
export function renderGrpcError(res: SandboxResponse, err: KeyvaletError, httpStatus: number, headers: OutgoingHttpHeaders): void {
  const reason = err.code === 'policy_denied' && typeof err.detail?.reason === 'string' ? ` (${err.detail.reason})` : ''
  res.writeHead(200, { ...headers, 'content-type': 'application/grpc', 'cache-control': 'no-store' })
  res.addTrailers({ 'grpc-status': String(grpcStatusFor(httpStatus)), 'grpc-message': percentEncode(`keyvalet ${err.code}: ${err.message}${reason}`) })
  res.end()
}

/**
 * gRPC's Trailers-Only answer (the status in the response head, no body, no trailers) as a head
 * and trailers: the status fields move out of `headers` into the returned trailers. Once relayed,
 * the head no longer ends the stream, so a client would otherwise see a call without a status.
 */
export function takeStatusFields(headers: OutgoingHttpHeaders): OutgoingHttpHeaders {
  const trailers: OutgoingHttpHeaders = {}
  if (headers['grpc-status'] === undefined) return trailers
  for (const name of ['grpc-status', 'grpc-message', 'grpc-status-details-bin']) {
    if (headers[name] === undefined) continue
    trailers[name] = headers[name]
    delete headers[name]
  }
  return trailers
}

/** grpc-message's percent-encoding: bytes outside printable ASCII, and %, as %XX of their UTF-8. */
function percentEncode(text: string): string {
  let out = ''
  for (const byte of Buffer.from(text, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}
