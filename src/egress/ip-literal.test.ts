import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { classifyHost, formatIpv6, isIpLiteralRefusal, parseIpv6, type HostClass } from './ip-literal.ts'

const name = (n: string): HostClass => ({ kind: 'name', name: n })
const v4 = (a: string): HostClass => ({ kind: 'ip', address: a, family: 4 })
const v6 = (a: string): HostClass => ({ kind: 'ip', address: a, family: 6 })
const no = (why: string): HostClass => ({ kind: 'refused', why } as HostClass)

const TABLE: readonly (readonly [string, HostClass])[] = [
  // Names
  ['api.github.com', name('api.github.com')],
  ['API.GitHub.COM', name('api.github.com')],
  ['api.github.com.', name('api.github.com')],
  ['localhost', name('localhost')],
  ['xn--bcher-kva.example', name('xn--bcher-kva.example')],
  ['a-b.c-d.example', name('a-b.c-d.example')],
  ['1password.com', name('1password.com')],
  ['123.example.com', name('123.example.com')],
  ['0x7f.example.com', name('0x7f.example.com')],
  ['0xg', name('0xg')],
  ['a.b2', name('a.b2')],
  [`${'a'.repeat(63)}.example`, name(`${'a'.repeat(63)}.example`)],
  [`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`, name(`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`)],
  // Canonical IPv4
  ['127.0.0.1', v4('127.0.0.1')],
  ['0.0.0.0', v4('0.0.0.0')],
  ['8.8.8.8', v4('8.8.8.8')],
  ['255.255.255.255', v4('255.255.255.255')],
  ['169.254.169.254', v4('169.254.169.254')],
  // IPv6, bracketed or not, canonicalised (RFC 5952)
  ['::1', v6('::1')],
  ['[::1]', v6('::1')],
  ['[0:0:0:0:0:0:0:1]', v6('::1')],
  ['[FD00:EC2::254]', v6('fd00:ec2::254')],
  ['2001:db8:0:0:1:0:0:1', v6('2001:db8::1:0:0:1')],
  ['2001:0db8:0000:0000:0000:0000:0000:0001', v6('2001:db8::1')],
  ['[::ffff:127.0.0.1]', v6('::ffff:127.0.0.1')],
  ['[::ffff:7f00:1]', v6('::ffff:127.0.0.1')],
  ['[::FFFF:A9FE:A9FE]', v6('::ffff:169.254.169.254')],
  ['[64:ff9b::127.0.0.1]', v6('64:ff9b::7f00:1')],
  ['[::]', v6('::')],
  // Odd IPv4 encodings
  ['0177.0.0.1', no('ipv4_leading_zero')],
  ['017700000001', no('ipv4_ambiguous')],
  ['0x7f.0.0.1', no('ipv4_ambiguous')],
  ['0X7F.0.0.1', no('ipv4_ambiguous')],
  ['0x7f000001', no('ipv4_ambiguous')],
  ['0x7F000001', no('ipv4_ambiguous')],
  ['0x7f.0x0.0x0.0x1', no('ipv4_ambiguous')],
  ['0x', no('ipv4_ambiguous')],
  ['2130706433', no('ipv4_ambiguous')],
  ['127.1', no('ipv4_ambiguous')],
  ['127.0.1', no('ipv4_ambiguous')],
  ['1.2.3', no('ipv4_ambiguous')],
  ['1.2.3.4.5', no('ipv4_ambiguous')],
  ['127.000.000.001', no('ipv4_leading_zero')],
  ['127.0.0.01', no('ipv4_leading_zero')],
  ['00.0.0.0', no('ipv4_leading_zero')],
  ['256.0.0.1', no('ipv4_octet_range')],
  ['1.2.3.1000', no('ipv4_octet_range')],
  ['127.0.0.1.', no('ipv4_trailing_dot')],
  ['foo.123', no('ipv4_ambiguous')],
  ['example.com.0x1', no('ipv4_ambiguous')],
  ['a.1.2.3', no('ipv4_ambiguous')],
  ['1', no('ipv4_ambiguous')],
  ['0', no('ipv4_ambiguous')],
  // IPv6 oddities
  ['fe80::1%eth0', no('zone_id')],
  ['[fe80::1%25eth0]', no('zone_id')],
  ['[fe80::1%eth0]', no('zone_id')],
  ['[::1', no('ipv6_invalid')],
  ['[127.0.0.1]', no('ipv6_invalid')],
  ['[example.com]', no('ipv6_invalid')],
  ['[]', no('ipv6_invalid')],
  ['1:2:3:4:5:6:7:8:9', no('ipv6_invalid')],
  ['::ffff:0177.0.0.1', no('ipv6_invalid')],
  ['::ffff:127.1', no('ipv6_invalid')],
  ['[::1]:443', no('ipv6_invalid')],
  ['example.com:443', no('ipv6_invalid')],
  ['[[::1]]', no('ipv6_invalid')],
  // Malformed names
  ['', no('empty')],
  ['.', no('empty')],
  ['..', no('label_invalid')],
  ['a..b', no('label_invalid')],
  ['.example.com', no('label_invalid')],
  ['-a.example', no('label_invalid')],
  ['a-.example', no('label_invalid')],
  ['under_score.example', no('label_invalid')],
  ['*.example.com', no('label_invalid')],
  ['exa mple.com', no('not_ascii')],
  ['bücher.example', no('not_ascii')],
  ['example.com\r\n', no('not_ascii')],
  ['example.com\0', no('not_ascii')],
  ['a%2e.example', no('label_invalid')],
  ['user@example.com', no('label_invalid')],
  ['example.com/path', no('label_invalid')],
  ['example.com\\', no('label_invalid')],
  [`${'a'.repeat(64)}.example`, no('label_invalid')],
  [`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}`, no('too_long')],
  ['a'.repeat(10_000), no('too_long')],
]

describe('classifyHost', () => {
  for (const [host, expected] of TABLE) {
    it(`${JSON.stringify(host.length > 60 ? `${host.slice(0, 20)}…(${host.length})` : host)} → ${expected.kind === 'refused' ? `refused ${expected.why}` : expected.kind === 'ip' ? `ip ${expected.address}` : `name ${expected.name}`}`, () => {
      assert.deepEqual(classifyHost(host), expected)
    })
  }

  it('every encoding of 127.0.0.1 that WHATWG URL accepts is refused here', () => {
    for (const host of ['0177.0.0.1', '0x7f.0.0.1', '0x7f000001', '2130706433', '017700000001', '127.1', '127.0.1', '127.000.000.001', '0x7f.1', '127.0.0.1.']) {
      assert.equal(new URL(`http://${host}/`).hostname, '127.0.0.1', host) // what a lenient parser does
      const c = classifyHost(host)
      assert.equal(c.kind, 'refused', host)
      assert.ok(c.kind === 'refused' && isIpLiteralRefusal(c.why), host)
    }
  })

  it('refuses non-strings without throwing', () => {
    assert.deepEqual(classifyHost(undefined as unknown as string), { kind: 'refused', why: 'empty' })
  })

  it('isIpLiteralRefusal separates literal refusals from malformed names', () => {
    assert.equal(isIpLiteralRefusal('ipv4_ambiguous'), true)
    assert.equal(isIpLiteralRefusal('ipv6_invalid'), true)
    assert.equal(isIpLiteralRefusal('zone_id'), true)
    assert.equal(isIpLiteralRefusal('label_invalid'), false)
    assert.equal(isIpLiteralRefusal('too_long'), false)
  })
})

describe('parseIpv6 / formatIpv6', () => {
  const rows: readonly (readonly [string, string])[] = [
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['1:0:0:2:0:0:3:4', '1::2:0:0:3:4'],
    ['1:0:2:3:4:5:6:7', '1:0:2:3:4:5:6:7'],
    ['2001:DB8::0:1', '2001:db8::1'],
    ['::ffff:1.2.3.4', '::ffff:1.2.3.4'],
    ['::ffff:102:304', '::ffff:1.2.3.4'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
    ['::1.2.3.4', '::102:304'],
    ['64:ff9b::8.8.8.8', '64:ff9b::808:808'],
  ]
  for (const [input, canonical] of rows) {
    it(`${input} → ${canonical}`, () => {
      const bytes = parseIpv6(input)
      assert.ok(bytes !== undefined)
      assert.equal(formatIpv6(bytes), canonical)
      assert.deepEqual(parseIpv6(canonical), bytes)
    })
  }
  it('refuses what is not IPv6', () => {
    for (const bad of ['', '1.2.3.4', 'fe80::1%eth0', ':::', '1:2:3:4:5:6:7:8:9', 'g::1']) assert.equal(parseIpv6(bad), undefined, bad)
  })
})
