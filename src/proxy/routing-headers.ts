/**
 * Request headers a server behind a proxy believes about a request: where it came from, where it
 * was addressed, which method or path to act on, who was authenticated, what the proxy in front
 * already did. Load balancers, frameworks, CDNs and service meshes act on them when they trust the
 * hop before them, and to the upstream keyvalet is that hop: it decided on the request line it saw,
 * so the sandbox's values never go upstream with the credential. The one exception is a header
 * the allowing rule names under `headers` (its constraint then checked the value).
 *
 * This is the one list (exact names and prefixes, lower-case); the header-stripping tests and the
 * table in docs/security.md (`npm run docs`) are generated from it.
 */
export interface RoutingHeader {
  /** Lower-case header name, or the start of every name in the family when `prefix` is set. */
  readonly name: string
  readonly prefix?: true
  readonly kind: RoutingHeaderKind
}

export type RoutingHeaderKind = 'client' | 'target' | 'method' | 'identity' | 'proxy'

/** What a front end does with each kind, for the docs. */
export const ROUTING_HEADER_KINDS: Readonly<Record<RoutingHeaderKind, string>> = {
  client: 'who the client is and which hops it went through (rate limits, allow-lists and logs key on them)',
  target: 'where the request was addressed: scheme, host, port, path (routing, redirects and access checks act on them instead of the request line)',
  method: 'which method to act on instead of the request line\'s',
  identity: 'who an authenticating front end signed in (apps behind AWS ALB, Google IAP, Azure App Service, oauth2-proxy trust them as the user)',
  proxy: 'instructions to, or between, proxy internals',
}

export const ROUTING_HEADERS: readonly RoutingHeader[] = [
  // RFC 7239 and its de-facto predecessors; the x-forwarded- family includes -for, -host, -proto,
  // -port, -prefix, -uri, -path, -scheme, -server, -ssl, -method and -client-cert.
  { name: 'forwarded', kind: 'client' },
  { name: 'x-forwarded-', prefix: true, kind: 'client' },
  { name: 'x-forwarded', kind: 'client' },
  // A proxy must add its own Via entry (RFC 9110 §7.6.3); keyvalet adds none, so the sandbox's
  // would describe a chain keyvalet never vouched for.
  { name: 'via', kind: 'client' },
  { name: 'x-real-ip', kind: 'client' }, // nginx
  { name: 'x-client-ip', kind: 'client' },
  { name: 'client-ip', kind: 'client' },
  { name: 'true-client-ip', kind: 'client' }, // Akamai, Cloudflare
  { name: 'cf-connecting-ip', kind: 'client' }, // Cloudflare
  { name: 'cf-connecting-ipv6', kind: 'client' },
  { name: 'fastly-client-ip', kind: 'client' },
  { name: 'x-cluster-client-ip', kind: 'client' },
  { name: 'x-proxyuser-ip', kind: 'client' },
  { name: 'x-originating-ip', kind: 'client' },
  { name: 'x-remote-ip', kind: 'client' },
  { name: 'x-remote-addr', kind: 'client' },
  // x-original- covers IIS/ASP.NET's -url, -host, -proto, -for, -prefix and nginx ingress's -uri.
  { name: 'x-original-', prefix: true, kind: 'target' },
  { name: 'x-rewrite-url', kind: 'target' }, // IIS URL Rewrite
  { name: 'x-override-url', kind: 'target' },
  { name: 'x-host', kind: 'target' },
  { name: 'x-scheme', kind: 'target' },
  { name: 'x-url-scheme', kind: 'target' },
  { name: 'front-end-https', kind: 'target' }, // Microsoft
  { name: 'x-script-name', kind: 'target' }, // WSGI path-prefix middleware
  { name: 'x-http-method-override', kind: 'method' },
  { name: 'x-http-method', kind: 'method' },
  { name: 'x-method-override', kind: 'method' },
  { name: 'x-amzn-oidc-', prefix: true, kind: 'identity' }, // AWS ALB authentication
  { name: 'x-goog-iap-jwt-assertion', kind: 'identity' }, // Google IAP
  { name: 'x-goog-authenticated-user-', prefix: true, kind: 'identity' },
  { name: 'x-ms-client-principal', kind: 'identity' }, // Azure App Service authentication
  { name: 'x-ms-client-principal-', prefix: true, kind: 'identity' },
  { name: 'x-auth-request-', prefix: true, kind: 'identity' }, // oauth2-proxy
  { name: 'x-remote-user', kind: 'identity' },
  { name: 'remote-user', kind: 'identity' },
  { name: 'x-envoy-', prefix: true, kind: 'proxy' }, // Envoy trusts these from "internal" peers
  { name: 'x-middleware-subrequest', kind: 'proxy' }, // Next.js: skips middleware (CVE-2025-29927)
  { name: 'proxy', kind: 'proxy' }, // becomes HTTP_PROXY under CGI (httpoxy)
]

const EXACT = new Set(ROUTING_HEADERS.filter((h) => h.prefix !== true).map((h) => h.name))
const PREFIXES = ROUTING_HEADERS.filter((h) => h.prefix === true).map((h) => h.name)

/** Whether a lower-case header name is one of ROUTING_HEADERS. */
export function isRoutingHeader(name: string): boolean {
  return EXACT.has(name) || PREFIXES.some((p) => name.startsWith(p))
}
