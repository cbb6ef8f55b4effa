import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AssertionKeys } from '../assertion/keys.ts'
import { toKeyvaletError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { renderError } from './error-reply.ts'

/** Where the gateway publishes the assertion keys. Connector names never start with '.', so no connector can shadow it. */
export const JWKS_PATH = '/.well-known/jwks.json'

export function isJwksRequest(req: IncomingMessage): boolean {
  return (req.method === 'GET' || req.method === 'HEAD') && (req.url ?? '').split('?')[0] === JWKS_PATH
}

/**
 * Answers a JWKS request: public keys only (AssertionKeys publishes an allow-list of members),
 * no task key needed, cacheable for 5 minutes. Not a request through keyvalet, so not audited.
 */
export async function serveJwks(keys: AssertionKeys, req: IncomingMessage, res: ServerResponse, log: Logger, requestId: string): Promise<void> {
  try {
    const body = JSON.stringify(await keys.jwks())
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'public, max-age=300' })
    res.end(req.method === 'HEAD' ? undefined : body)
  } catch (err) {
    const error = toKeyvaletError(err)
    log.error('jwks unavailable', { request_id: requestId, error: error.code, detail: error.detail ?? String(err) })
    renderError(res, error, requestId)
  }
  req.resume()
}
