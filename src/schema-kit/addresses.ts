/**
 * The configuration fields that hold addresses, checked at load so that a typo is a located error
 * at `check` and `start`, never a failure of every request later: CIDRs (allow_addresses), host:port
 * pairs (listen, tunnels), DNS servers, and the host of every URL keyvalet dials.
 *
 * Hosts are held to what the data plane accepts (egress/ip-literal.ts): a DNS name or a canonical
 * IP literal. `127.1`, `0x7f000001` or `0177.0.0.1` are refused here, not read one way by the URL
 * parser and another by an operator.
 */

import { isIPv4, isIPv6 } from 'node:net'
import { parseCidr } from '../egress/address-policy.ts'
import { classifyHost } from '../egress/ip-literal.ts'

export interface HostPort {
  /** Canonical: lower-case name, dotted quad, or compressed IPv6 without brackets. */
  readonly host: string
  readonly port: number
}

/** Each entry of a CIDR list (`allow_addresses`) parses as address/prefix: else one problem per entry. */
export function checkCidrs(list: readonly string[] | undefined, problem: (index: number, message: string) => void): void {
  list?.forEach((cidr, i) => {
    try {
      parseCidr(cidr)
    } catch (err) {
      problem(i, (err as Error).message)
    }
  })
}

/** `host:port` or `[v6]:port` with a port from `minPort` to 65535, or a message saying what is wrong (`example` shows the form). */
export function parseHostPort(text: string, minPort: 0 | 1, example: string): HostPort | string {
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):([0-9]{1,5})$/.exec(text)
  if (m === null) return `must be host:port, e.g. ${example} (an IPv6 host in brackets: [::1]:${example.split(':').at(-1)})`
  const port = Number(m[3])
  if (port < minPort || port > 65535) return `must be host:port with a port from ${minPort} to 65535, e.g. ${example}`
  if (m[1] !== undefined && !isIPv6(m[1])) return `[${m[1]}] is not an IPv6 address`
  const host = hostProblem(m[1] ?? m[2] ?? '')
  return typeof host === 'string' ? { host, port } : host.message
}

/** The host of an absolute URL as written (before the URL parser rewrites it): a message when it is not a name or a canonical IP. */
export function urlHostProblem(url: string): string | undefined {
  const authority = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(url)?.[1]
  if (authority === undefined) return undefined
  const hostPort = authority.slice(authority.lastIndexOf('@') + 1)
  const host = hostPort.startsWith('[') ? hostPort.slice(1, hostPort.indexOf(']')) : hostPort.replace(/:[0-9]*$/, '')
  const checked = hostProblem(host)
  return typeof checked === 'string' ? undefined : checked.message
}

/** `http://host:port` of a keyvalet listener as sandboxes reach it (listen.*_url), or a message. */
export function parseListenerUrl(text: string): URL | string {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return 'must be an absolute URL such as http://keyvalet.internal:8787'
  }
  if (url.protocol !== 'http:') return 'must be an http:// URL (keyvalet\'s listeners speak plain HTTP; the task key is their credential)'
  if (url.username !== '' || url.password !== '' || url.pathname !== '/' || url.search !== '' || url.hash !== '' || text.endsWith('?') || text.endsWith('#')) return 'must be http://host:port with nothing after it'
  return urlHostProblem(text) ?? url
}

/** A DNS server as `dns.servers` takes it: an IP, `ip:port`, or `[v6]:port`. */
export function dnsServerProblem(text: string): string | undefined {
  if (isIPv4(text) || isIPv6(text)) return undefined
  const m = /^(?:\[([^\]]*)\]|([0-9.]*)):([0-9]{1,5})$/.exec(text)
  const ok = m !== null && (m[1] !== undefined ? isIPv6(m[1]) && !m[1].includes('%') : isIPv4(m[2] ?? '')) && Number(m[3]) >= 1 && Number(m[3]) <= 65535
  return ok ? undefined : 'must be an IP address, ip:port or [ipv6]:port (port 1-65535), e.g. 9.9.9.9 or [2620:fe::fe]:53'
}

/** The canonical host, or why it is refused. */
function hostProblem(host: string): string | { message: string } {
  const cls = classifyHost(host)
  if (cls.kind === 'name') return cls.name
  if (cls.kind === 'ip') return cls.address
  return { message: `${JSON.stringify(host.slice(0, 80))} is not a DNS name or a canonical IP address (${cls.why.replaceAll('_', ' ')})` }
}
