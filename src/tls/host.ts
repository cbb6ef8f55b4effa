/**
 * Strict validation of the one host a leaf certificate is minted for.
 *
 * The host arrives from the sandbox (SNI or CONNECT authority), so anything that is not plainly a
 * DNS name or a canonical IP literal is refused rather than repaired: no wildcards, no trailing dot,
 * no brackets, ports or zone ids, no underscores, no non-ASCII (callers convert IDNs to A-labels).
 */
import { isIPv4, isIPv6 } from 'node:net'

export type LeafHost =
  | { kind: 'dns'; name: string }
  /** `text` is canonical (dotted quad, or compressed lower-case IPv6); `bytes` is 4 or 16 octets. */
  | { kind: 'ip'; text: string; bytes: Buffer }

/** Thrown for any host that is not accepted; `message` quotes the (truncated) input only. */
export class InvalidHostError extends Error {
  constructor(host: unknown, reason: string) {
    const shown = typeof host === 'string' ? JSON.stringify(host.slice(0, 80)) : typeof host
    super(`Invalid certificate host ${shown}: ${reason}`)
    this.name = 'InvalidHostError'
  }
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/

/**
 * Returns the canonical form of `host`, or throws InvalidHostError. DNS names are lower-cased,
 * RFC 1123 labels of 1–63 characters, at most 253 characters in all. A name whose last label is
 * numeric (`1.2.3`, `0x7f.1`, `2130706433`) is refused: URL parsers read such names as IPv4 in odd
 * encodings, and only the canonical dotted quad is accepted as an address.
 */
export function parseLeafHost(host: string): LeafHost {
  if (typeof host !== 'string' || host.length === 0) throw new InvalidHostError(host, 'empty')
  if (host.length > 253) throw new InvalidHostError(host, 'longer than 253 characters')
  if (isIPv4(host)) return { kind: 'ip', text: host, bytes: Buffer.from(host.split('.').map(Number)) }
  if (host.includes(':')) {
    if (!isIPv6(host) || host.includes('%')) throw new InvalidHostError(host, 'not a plain IPv6 literal')
    const text = new URL(`http://[${host}]/`).hostname.slice(1, -1)
    return { kind: 'ip', text, bytes: ipv6Bytes(text) }
  }
  const name = host.toLowerCase()
  const labels = name.split('.')
  for (const label of labels) {
    if (!LABEL.test(label)) throw new InvalidHostError(host, 'not a DNS name of RFC 1123 labels')
  }
  const last = labels[labels.length - 1] ?? ''
  if (/^(\d+|0x[0-9a-f]*)$/.test(last)) throw new InvalidHostError(host, 'numeric last label (an IP in disguise?)')
  return { kind: 'dns', name }
}

/** 16 octets of a canonical IPv6 literal (WHATWG serialisation: hex groups, at most one `::`). */
function ipv6Bytes(text: string): Buffer {
  const [head = '', tail] = text.split('::')
  const left = head === '' ? [] : head.split(':')
  const right = tail === undefined || tail === '' ? [] : tail.split(':')
  const zeros = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0')
  const groups = [...left, ...zeros, ...right]
  if (groups.length !== 8 || !groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) {
    throw new InvalidHostError(text, 'not a plain IPv6 literal')
  }
  const bytes = Buffer.alloc(16)
  groups.forEach((group, i) => bytes.writeUInt16BE(parseInt(group, 16), i * 2))
  return bytes
}
