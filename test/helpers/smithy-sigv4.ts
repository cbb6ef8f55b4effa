import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto'
import { SignatureV4 } from '@smithy/signature-v4'

/** The AWS SDK's own signer (@smithy/signature-v4), used as the oracle for keyvalet's SigV4. */

class NodeSha256 {
  readonly #h: Hash | Hmac
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#h = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret))
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.#h.update(bytes(data))
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#h.digest())
  }
}

function bytes(data: string | ArrayBuffer | ArrayBufferView): string | Uint8Array {
  if (typeof data === 'string') return data
  return data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
}

export interface OracleRequest {
  method: string
  host: string
  /** For s3 the canonical (once-encoded) path; for other services the raw path. */
  path: string
  query: Record<string, string | string[]>
  headers: Record<string, string>
}

export interface OracleKeys { accessKeyId: string; secretAccessKey: string; sessionToken?: string }

/** The Authorization header @smithy/signature-v4 computes for `req` at `date`. */
export async function smithyAuthorization(req: OracleRequest, keys: OracleKeys, scope: { service: string; region: string }, date: Date, signable?: Set<string>): Promise<string> {
  const signer = new SignatureV4({ credentials: keys, region: scope.region, service: scope.service, sha256: NodeSha256, uriEscapePath: scope.service !== 's3', applyChecksum: false })
  const signed = await signer.sign(
    { method: req.method, protocol: 'https:', hostname: req.host, path: req.path, query: req.query, headers: { ...req.headers, host: req.host } },
    { signingDate: date, ...(signable === undefined ? {} : { signableHeaders: signable }) },
  )
  return String(signed.headers['authorization'])
}

/** A raw query string as the SDK's request object holds it: decoded names and values, repeated names as arrays. */
export function parseRawQuery(raw: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const part of raw.split('&')) {
    if (part === '') continue
    const eq = part.indexOf('=')
    const name = decodeURIComponent(eq === -1 ? part : part.slice(0, eq))
    const value = eq === -1 ? '' : decodeURIComponent(part.slice(eq + 1))
    const prev = out[name]
    out[name] = prev === undefined ? value : [...(Array.isArray(prev) ? prev : [prev]), value]
  }
  return out
}
