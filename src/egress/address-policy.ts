/**
 * Which resolved addresses keyvalet may dial. Refused by default: loopback, private, link-local
 * (cloud metadata 169.254.169.254, fd00:ec2::254), CGNAT, unique-local, multicast, reserved,
 * documentation/benchmark and unspecified ranges. IPv6 forms that embed an IPv4 address
 * (IPv4-mapped, NAT64, 6to4) are judged by the embedded IPv4 address, so `::ffff:127.0.0.1` is
 * loopback and `64:ff9b::808:808` is 8.8.8.8.
 *
 * A connector may allow CIDRs explicitly; an allow entry overrides every refusal in its family.
 *
 * Matching uses node:net BlockList, but always one family at a time: BlockList matches across
 * families (an IPv6 rule `::/0` matches every IPv4 address, an IPv4 rule matches IPv4-mapped
 * IPv6), which would make an allow entry reach further than it reads. Embedded IPv4 is extracted
 * here instead, explicitly.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net'
import { formatIpv6, parseIpv4, parseIpv6 } from './ip-literal.ts'

export type AddressVerdict = { ok: true } | { ok: false; range: string; via?: string }

export interface AddressPolicyOptions {
  /** CIDRs explicitly allowed for a connector, e.g. '127.0.0.0/8', '10.1.2.0/24', '::1/128'. */
  readonly allow?: readonly string[]
}

interface Range {
  readonly cidr: string
  readonly list: BlockList
}

/** Most specific first where ranges nest, so the verdict names the narrowest range. */
const REFUSED_V4: readonly string[] = [
  '0.0.0.0/8', // "this network", incl. 0.0.0.0 (which Linux dials as loopback)
  '10.0.0.0/8', // private
  '100.64.0.0/10', // CGNAT
  '127.0.0.0/8', // loopback
  '169.254.0.0/16', // link-local, incl. 169.254.169.254 cloud metadata
  '172.16.0.0/12', // private
  '192.0.0.0/24', // IETF protocol assignments
  '192.0.2.0/24', // TEST-NET-1
  '192.168.0.0/16', // private
  '198.18.0.0/15', // benchmarking
  '198.51.100.0/24', // TEST-NET-2
  '203.0.113.0/24', // TEST-NET-3
  '224.0.0.0/4', // multicast
  '255.255.255.255/32', // limited broadcast (before 240/4, which contains it)
  '240.0.0.0/4', // reserved
]

const REFUSED_V6: readonly string[] = [
  '::/128', // unspecified
  '::1/128', // loopback
  '::/96', // IPv4-compatible (deprecated; beyond the brief, refused outright)
  '::ffff:0:0:0/96', // SIIT IPv4-translated (beyond the brief, refused outright)
  '64:ff9b:1::/48', // local-use NAT64 (RFC 8215; variable embedding, refused outright)
  '100::/64', // discard-only
  '2001::/32', // Teredo (embeds an obfuscated IPv4; refused outright)
  '2001:db8::/32', // documentation
  'fc00::/7', // unique-local, incl. fd00:ec2::254 (AWS metadata over IPv6)
  'fe80::/10', // link-local
  'fec0::/10', // site-local (deprecated)
  'ff00::/8', // multicast
  // ::ffff:0:0/96, 64:ff9b::/96 and 2002::/16 are judged by their embedded IPv4, see below.
]

function buildRanges(cidrs: readonly string[]): Range[] {
  return cidrs.map((cidr) => {
    const { address, prefix, family } = parseCidr(cidr)
    const list = new BlockList()
    list.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6')
    return { cidr, list }
  })
}

const V4 = buildRanges(REFUSED_V4)
const V6 = buildRanges(REFUSED_V6)

/**
 * Parses and validates `address/prefix`. Strict: canonical address text, decimal prefix within the
 * family's width, and no host bits set (a typo like 10.1.2.3/8 is far more likely than intent).
 */
export function parseCidr(cidr: string): { address: string; prefix: number; family: 4 | 6 } {
  if (typeof cidr !== 'string') throw new Error(`invalid CIDR ${JSON.stringify(cidr)}: expected a string like '10.1.2.0/24'`)
  const slash = cidr.indexOf('/')
  if (slash < 0 || slash !== cidr.lastIndexOf('/')) throw new Error(`invalid CIDR ${JSON.stringify(cidr)}: expected address/prefix, e.g. '10.1.2.0/24' or '::1/128'`)
  const address = cidr.slice(0, slash)
  const prefixText = cidr.slice(slash + 1)
  const family = isIPv4(address) ? 4 : isIPv6(address) && !address.includes('%') ? 6 : 0
  if (family === 0) throw new Error(`invalid CIDR ${JSON.stringify(cidr)}: ${JSON.stringify(address)} is not an IPv4 dotted quad or an IPv6 address`)
  const width = family === 4 ? 32 : 128
  if (!/^(?:0|[1-9][0-9]{0,2})$/.test(prefixText) || Number(prefixText) > width) {
    throw new Error(`invalid CIDR ${JSON.stringify(cidr)}: prefix must be a whole number from 0 to ${width}`)
  }
  const prefix = Number(prefixText)
  const bytes = family === 4 ? parseIpv4(address) : parseIpv6(address)
  if (bytes === undefined) throw new Error(`invalid CIDR ${JSON.stringify(cidr)}: unparseable address`)
  const network = maskBytes(bytes, prefix)
  if (!network.every((b, i) => b === bytes[i])) {
    const text = family === 4 ? network.join('.') : formatIpv6(network)
    throw new Error(`invalid CIDR ${JSON.stringify(cidr)}: host bits are set; did you mean '${text}/${prefix}'?`)
  }
  return { address, prefix, family }
}

function maskBytes(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes.length)
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - 8 * i))
    out[i] = (bytes[i] ?? 0) & ((0xff << (8 - bits)) & 0xff)
  }
  return out
}

/** The IPv4 address embedded in an IPv6 address by a translation scheme, if any. */
function embeddedIpv4(b: Uint8Array): { v4: string; via: string } | undefined {
  const quad = (i: number): string => `${b[i]}.${b[i + 1]}.${b[i + 2]}.${b[i + 3]}`
  const zero = (from: number, to: number): boolean => b.subarray(from, to).every((x) => x === 0)
  // ::ffff:0:0/96 — IPv4-mapped: what the kernel actually dials for these is the IPv4 address.
  if (zero(0, 10) && b[10] === 0xff && b[11] === 0xff) return { v4: quad(12), via: '::ffff:0:0/96' }
  // 64:ff9b::/96 — well-known NAT64 prefix (RFC 6052): the translator dials the embedded IPv4.
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zero(4, 12)) return { v4: quad(12), via: '64:ff9b::/96' }
  // 2002::/16 — 6to4 (RFC 3056): 2002:AABB:CCDD::/48 belongs to the IPv4 address AA.BB.CC.DD.
  if (b[0] === 0x20 && b[1] === 0x02) return { v4: quad(2), via: '2002::/16' }
  return undefined
}

export class AddressPolicy {
  readonly #allow4 = new BlockList()
  readonly #allow6 = new BlockList()
  /** Normalised allow entries, for logs and `explain`. */
  readonly allow: readonly string[]

  constructor(options: AddressPolicyOptions = {}) {
    const allow: string[] = []
    for (const cidr of options.allow ?? []) {
      const { address, prefix, family } = parseCidr(cidr)
      if (family === 4) this.#allow4.addSubnet(address, prefix, 'ipv4')
      else this.#allow6.addSubnet(address, prefix, 'ipv6')
      allow.push(cidr)
    }
    this.allow = Object.freeze(allow)
  }

  /**
   * Whether `address` may be dialed. Anything that is not a valid address of `family` is refused
   * (range 'invalid'): this fails closed.
   */
  check(address: string, family: 4 | 6): AddressVerdict {
    if (typeof address !== 'string' || address.includes('%')) return { ok: false, range: 'invalid' }
    if (family === 4) {
      if (!isIPv4(address)) return { ok: false, range: 'invalid' }
      return this.#check4(address)
    }
    if (family !== 6) return { ok: false, range: 'invalid' }
    const bytes = parseIpv6(address)
    if (bytes === undefined) return { ok: false, range: 'invalid' }
    if (this.#allow6.check(address, 'ipv6')) return { ok: true }
    const embedded = embeddedIpv4(bytes)
    if (embedded !== undefined) {
      const verdict = this.#check4(embedded.v4)
      return verdict.ok ? verdict : { ok: false, range: verdict.range, via: embedded.via }
    }
    for (const r of V6) if (r.list.check(address, 'ipv6')) return { ok: false, range: r.cidr }
    return { ok: true }
  }

  #check4(address: string): AddressVerdict {
    if (this.#allow4.check(address, 'ipv4')) return { ok: true }
    for (const r of V4) if (r.list.check(address, 'ipv4')) return { ok: false, range: r.cidr }
    return { ok: true }
  }
}
