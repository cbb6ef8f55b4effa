import type { Dispatcher } from 'undici'
import { egressGuard } from '../egress/connect.ts'
import { connectorDispatcher, effectiveProxy } from '../egress/dispatch.ts'
import type { NameResolver } from '../egress/resolver.ts'
import type { Connector } from '../model/policy.ts'
import type { UpstreamProxy } from '../model/options.ts'
import type { Vault } from '../vault/vault.ts'

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

/** A token endpoint's answer as a JSON object, or undefined (not JSON, or not an object). */
export function jsonObject(body: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(body.toString('utf8'))
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
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
 * Through the connector's corporate proxy (its own upstream_proxy, or the instance's) when it has
 * one, as its upstream traffic is.
 */
export class TokenHttp {
  readonly #resolver: NameResolver
  readonly #timeoutMs: number
  readonly #upstreamProxy: UpstreamProxy | undefined
  readonly #vault: Vault | undefined
  readonly #agents = new Map<string, Promise<Dispatcher>>()
  /** Token endpoint calls by credential source kind (bounded by the kinds): answered 2xx, or not / failed. For the metrics. */
  readonly fetches = new Map<string, { ok: number; failed: number }>()

  constructor(opts: { readonly resolver: NameResolver; readonly timeoutMs?: number; readonly upstreamProxy?: UpstreamProxy | undefined; readonly vault?: Vault }) {
    this.#resolver = opts.resolver
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
    this.#upstreamProxy = opts.upstreamProxy
    this.#vault = opts.vault
  }

  /** Rejects with an EgressError (refused address, DNS) or a network error; the caller maps it to its own code. */
  async request(url: URL, init: TokenRequest, connector: Connector): Promise<TokenResponse> {
    const kind = connector.credential?.source.type ?? 'none'
    let counts = this.fetches.get(kind)
    if (counts === undefined) this.fetches.set(kind, (counts = { ok: 0, failed: 0 }))
    try {
      const res = await this.#request(url, init, connector)
      if (res.status >= 200 && res.status < 300) counts.ok++
      else counts.failed++
      return res
    } catch (err) {
      counts.failed++
      throw err
    }
  }

  async #request(url: URL, init: TokenRequest, connector: Connector): Promise<TokenResponse> {
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && connector.allowInsecure)) {
      throw new Error(`token endpoint ${url.origin} must be https:// (http:// only with the connector's allow_insecure)`)
    }
    const proxy = effectiveProxy(connector, this.#upstreamProxy)
    // Direct: the endpoint's address is checked here (literals) and when dialing (names). Through
    // the proxy, the proxy's address is checked and the proxy resolves the endpoint.
    if (proxy === undefined) egressGuard({ allowAddresses: connector.allowAddresses, resolver: this.#resolver }).admit(url.hostname)
    const signal = AbortSignal.timeout(this.#timeoutMs)
    const res = await (await this.#agent(connector)).request({
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
    const agents = await Promise.allSettled([...this.#agents.values()])
    await Promise.all(agents.flatMap((a) => (a.status === 'fulfilled' ? [a.value.close()] : [])))
    this.#agents.clear()
  }

  #agent(connector: Connector): Promise<Dispatcher> {
    let agent = this.#agents.get(connector.name)
    if (agent === undefined) {
      const common = { connections: 16, headersTimeout: this.#timeoutMs, bodyTimeout: this.#timeoutMs }
      const created = connectorDispatcher(connector, { common, resolver: this.#resolver, upstreamProxy: this.#upstreamProxy, vault: this.#vault })
      // A failure (the proxy's secret missing) is not kept: the next token request tries again.
      created.catch(() => {
        if (this.#agents.get(connector.name) === created) this.#agents.delete(connector.name)
      })
      this.#agents.set(connector.name, created)
      agent = created
    }
    return agent
  }
}
