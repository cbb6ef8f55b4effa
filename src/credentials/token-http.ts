import { createSecureContext, rootCertificates } from 'node:tls'
import { Agent, type Dispatcher } from 'undici'
import { AddressPolicy } from '../egress/address-policy.ts'
import { checkLiteral, createGuardedLookup } from '../egress/guarded-lookup.ts'
import type { NameResolver } from '../egress/resolver.ts'
import type { Connector } from '../policy/types.ts'

export interface TokenResponse {
  readonly status: number
  readonly headers: Record<string, string | string[] | undefined>
  readonly body: Buffer
}

export interface TokenRequest {
  readonly method: 'GET' | 'POST'
  readonly headers?: Record<string, string>
  readonly body?: string | Buffer
}

/** Bounds on a token endpoint's answer: it is small, and slow ones must not hold requests forever. */
const MAX_BODY = 256 * 1024
const DEFAULT_TIMEOUT_MS = 10_000

/**
 * The HTTP client credential sources use to reach token endpoints (OAuth servers, GitHub's App
 * API). It applies the same rules as upstream traffic, with the connector's settings: names are
 * resolved by keyvalet's own resolver, addresses that are not public are refused unless the
 * connector's `allow_addresses` lists them, TLS is verified (the connector's `ca` trusted in
 * addition to the system roots), redirects are not followed, answers are bounded in time and size.
 * Token endpoints are reached directly, not through an upstream_proxy.
 */
export class TokenHttp {
  readonly #resolver: NameResolver
  readonly #timeoutMs: number
  readonly #agents = new Map<string, Dispatcher>()

  constructor(opts: { readonly resolver: NameResolver; readonly timeoutMs?: number }) {
    this.#resolver = opts.resolver
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
  }

  /** Rejects with an EgressError (refused address, DNS) or a network error; the caller maps it to its own code. */
  async request(url: URL, init: TokenRequest, connector: Connector): Promise<TokenResponse> {
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && connector.allowInsecure)) {
      throw new Error(`token endpoint ${url.origin} must be https:// (http:// only with the connector's allow_insecure)`)
    }
    const policy = new AddressPolicy({ allow: connector.allowAddresses })
    checkLiteral(url.hostname.replace(/^\[(.*)\]$/, '$1'), policy)
    const signal = AbortSignal.timeout(this.#timeoutMs)
    const res = await this.#agent(connector, policy).request({
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method: init.method,
      headers: { 'user-agent': 'keyvalet', ...init.headers },
      body: init.body ?? null,
      signal,
    })
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length
      if (size > MAX_BODY) {
        res.body.destroy()
        throw new Error(`token endpoint answer larger than ${MAX_BODY} bytes`)
      }
      chunks.push(chunk)
    }
    return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }
  }

  async close(): Promise<void> {
    await Promise.all([...this.#agents.values()].map((a) => a.close()))
    this.#agents.clear()
  }

  #agent(connector: Connector, policy: AddressPolicy): Dispatcher {
    let agent = this.#agents.get(connector.name)
    if (agent === undefined) {
      const tls = connector.ca === undefined ? {} : { secureContext: createSecureContext({ ca: [...rootCertificates, connector.ca] }) }
      agent = new Agent({
        connections: 16,
        headersTimeout: this.#timeoutMs,
        bodyTimeout: this.#timeoutMs,
        connect: { rejectUnauthorized: true, ...tls, lookup: createGuardedLookup({ resolver: this.#resolver, policy }) },
      })
      this.#agents.set(connector.name, agent)
    }
    return agent
  }
}
