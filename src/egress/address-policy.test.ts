import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { AddressPolicy, parseCidr } from './address-policy.ts'

const policy = new AddressPolicy()

/** [address, family, refusing range (undefined = allowed), via] */
type Row = readonly [string, 4 | 6, string | undefined, string?]

const IPV4: readonly Row[] = [
  ['0.0.0.0', 4, '0.0.0.0/8'],
  ['0.255.255.255', 4, '0.0.0.0/8'],
  ['10.0.0.1', 4, '10.0.0.0/8'],
  ['10.255.255.255', 4, '10.0.0.0/8'],
  ['100.64.0.1', 4, '100.64.0.0/10'],
  ['100.127.255.255', 4, '100.64.0.0/10'],
  ['127.0.0.1', 4, '127.0.0.0/8'],
  ['127.255.255.254', 4, '127.0.0.0/8'],
  ['169.254.169.254', 4, '169.254.0.0/16'],
  ['169.254.0.1', 4, '169.254.0.0/16'],
  ['172.16.0.1', 4, '172.16.0.0/12'],
  ['172.31.255.255', 4, '172.16.0.0/12'],
  ['192.0.0.8', 4, '192.0.0.0/24'],
  ['192.0.2.1', 4, '192.0.2.0/24'],
  ['192.168.1.1', 4, '192.168.0.0/16'],
  ['198.18.0.1', 4, '198.18.0.0/15'],
  ['198.19.255.255', 4, '198.18.0.0/15'],
  ['198.51.100.7', 4, '198.51.100.0/24'],
  ['203.0.113.9', 4, '203.0.113.0/24'],
  ['224.0.0.1', 4, '224.0.0.0/4'],
  ['239.255.255.250', 4, '224.0.0.0/4'],
  ['240.0.0.1', 4, '240.0.0.0/4'],
  ['255.255.255.254', 4, '240.0.0.0/4'],
  ['255.255.255.255', 4, '255.255.255.255/32'],
  // Public, including the neighbours of refused ranges.
  ['8.8.8.8', 4, undefined],
  ['1.1.1.1', 4, undefined],
  ['9.255.255.255', 4, undefined],
  ['11.0.0.0', 4, undefined],
  ['100.63.255.255', 4, undefined],
  ['100.128.0.0', 4, undefined],
  ['126.255.255.255', 4, undefined],
  ['128.0.0.0', 4, undefined],
  ['169.253.255.255', 4, undefined],
  ['169.255.0.0', 4, undefined],
  ['172.15.255.255', 4, undefined],
  ['172.32.0.0', 4, undefined],
  ['192.0.1.0', 4, undefined],
  ['192.0.3.0', 4, undefined],
  ['192.167.255.255', 4, undefined],
  ['192.169.0.0', 4, undefined],
  ['198.17.255.255', 4, undefined],
  ['198.20.0.0', 4, undefined],
  ['223.255.255.255', 4, undefined],
]

const IPV6: readonly Row[] = [
  ['::', 6, '::/128'],
  ['0:0:0:0:0:0:0:0', 6, '::/128'],
  ['::1', 6, '::1/128'],
  ['0:0:0:0:0:0:0:1', 6, '::1/128'],
  ['100::1', 6, '100::/64'],
  ['2001:db8::1', 6, '2001:db8::/32'],
  ['2001:DB8:FFFF::1', 6, '2001:db8::/32'],
  ['fc00::1', 6, 'fc00::/7'],
  ['fd00:ec2::254', 6, 'fc00::/7'],
  ['fdff:ffff::1', 6, 'fc00::/7'],
  ['fe80::1', 6, 'fe80::/10'],
  ['febf:ffff::1', 6, 'fe80::/10'],
  ['ff02::1', 6, 'ff00::/8'],
  ['ff05::1:3', 6, 'ff00::/8'],
  // Beyond the brief: refused outright.
  ['::7f00:1', 6, '::/96'],
  ['::127.0.0.1', 6, '::/96'],
  ['::ffff:0:7f00:1', 6, '::ffff:0:0:0/96'],
  ['64:ff9b:1::7f00:1', 6, '64:ff9b:1::/48'],
  ['2001:0:4136:e378::1', 6, '2001::/32'],
  ['fec0::1', 6, 'fec0::/10'],
  // IPv4-mapped: judged by the embedded IPv4 address.
  ['::ffff:127.0.0.1', 6, '127.0.0.0/8', '::ffff:0:0/96'],
  ['::ffff:7f00:1', 6, '127.0.0.0/8', '::ffff:0:0/96'],
  ['::FFFF:7F00:0001', 6, '127.0.0.0/8', '::ffff:0:0/96'],
  ['0:0:0:0:0:ffff:7f00:1', 6, '127.0.0.0/8', '::ffff:0:0/96'],
  ['::ffff:169.254.169.254', 6, '169.254.0.0/16', '::ffff:0:0/96'],
  ['::ffff:a9fe:a9fe', 6, '169.254.0.0/16', '::ffff:0:0/96'],
  ['::ffff:10.0.0.1', 6, '10.0.0.0/8', '::ffff:0:0/96'],
  ['::ffff:0.0.0.0', 6, '0.0.0.0/8', '::ffff:0:0/96'],
  ['::ffff:8.8.8.8', 6, undefined],
  ['::ffff:808:808', 6, undefined],
  // NAT64 (64:ff9b::/96): embedded IPv4.
  ['64:ff9b::127.0.0.1', 6, '127.0.0.0/8', '64:ff9b::/96'],
  ['64:ff9b::7f00:1', 6, '127.0.0.0/8', '64:ff9b::/96'],
  ['64:ff9b::a9fe:a9fe', 6, '169.254.0.0/16', '64:ff9b::/96'],
  ['64:ff9b::c0a8:101', 6, '192.168.0.0/16', '64:ff9b::/96'],
  ['64:ff9b::808:808', 6, undefined],
  ['64:ff9b::8.8.8.8', 6, undefined],
  // 6to4 (2002::/16): embedded IPv4 in bits 16..47.
  ['2002:7f00:1::', 6, '127.0.0.0/8', '2002::/16'],
  ['2002:7f00:0001:ffff::1', 6, '127.0.0.0/8', '2002::/16'],
  ['2002:a9fe:a9fe::1', 6, '169.254.0.0/16', '2002::/16'],
  ['2002:0a00:0001::', 6, '10.0.0.0/8', '2002::/16'],
  ['2002:808:808::1', 6, undefined],
  // Public IPv6, including neighbours.
  ['2606:4700:4700::1111', 6, undefined],
  ['2001:4860:4860::8888', 6, undefined],
  ['2001:db7:ffff::1', 6, undefined],
  ['2001:db9::1', 6, undefined],
  ['fbff::1', 6, undefined],
  ['fe00::1', 6, undefined],
  ['::2', 6, '::/96'],
  ['100:0:0:1::1', 6, undefined],
  ['64:ff9b::1:0:0:1', 6, undefined],
]

describe('AddressPolicy default refusals', () => {
  for (const [address, family, range, via] of [...IPV4, ...IPV6]) {
    it(`${address} → ${range === undefined ? 'allowed' : `refused (${range}${via !== undefined ? ` via ${via}` : ''})`}`, () => {
      const verdict = policy.check(address, family)
      if (range === undefined) assert.deepEqual(verdict, { ok: true })
      else assert.deepEqual(verdict, via === undefined ? { ok: false, range } : { ok: false, range, via })
    })
  }
})

describe('AddressPolicy fails closed on bad input', () => {
  const bad: readonly (readonly [string, 4 | 6])[] = [
    ['garbage', 4], ['', 4], ['::1', 4], ['127.0.0.1', 6], ['fe80::1%eth0', 6], ['0177.0.0.1', 4],
    ['127.1', 4], ['2130706433', 4], [' 8.8.8.8', 4], ['8.8.8.8 ', 4], ['[::1]', 6],
  ]
  for (const [address, family] of bad) {
    it(`${JSON.stringify(address)}/${family} → invalid`, () => {
      assert.deepEqual(policy.check(address, family), { ok: false, range: 'invalid' })
    })
  }
  it('a family that is neither 4 nor 6 is refused', () => {
    assert.deepEqual(policy.check('8.8.8.8', 5 as 4), { ok: false, range: 'invalid' })
  })
})

describe('AddressPolicy allow overrides', () => {
  it('allows exactly the CIDR given, and nothing next to it', () => {
    const p = new AddressPolicy({ allow: ['127.0.0.1/32'] })
    assert.deepEqual(p.check('127.0.0.1', 4), { ok: true })
    assert.deepEqual(p.check('127.0.0.2', 4), { ok: false, range: '127.0.0.0/8' })
    assert.deepEqual(p.check('::1', 6), { ok: false, range: '::1/128' })
  })
  it('an IPv4 allow applies to the IPv4-mapped, NAT64 and 6to4 forms of the same addresses', () => {
    const p = new AddressPolicy({ allow: ['127.0.0.0/8'] })
    assert.deepEqual(p.check('::ffff:127.0.0.1', 6), { ok: true })
    assert.deepEqual(p.check('::ffff:7f00:2', 6), { ok: true })
    assert.deepEqual(p.check('64:ff9b::7f00:1', 6), { ok: true })
    assert.deepEqual(p.check('2002:7f00:1::', 6), { ok: true })
    assert.deepEqual(p.check('::ffff:10.0.0.1', 6), { ok: false, range: '10.0.0.0/8', via: '::ffff:0:0/96' })
  })
  it('allows a private /24 and an IPv6 loopback', () => {
    const p = new AddressPolicy({ allow: ['10.1.2.0/24', '::1/128'] })
    assert.deepEqual(p.check('10.1.2.200', 4), { ok: true })
    assert.deepEqual(p.check('10.1.3.1', 4), { ok: false, range: '10.0.0.0/8' })
    assert.deepEqual(p.check('::1', 6), { ok: true })
    assert.deepEqual(p.check('0:0:0:0:0:0:0:1', 6), { ok: true })
    assert.deepEqual(p.check('127.0.0.1', 4), { ok: false, range: '127.0.0.0/8' })
    assert.deepEqual(p.allow, ['10.1.2.0/24', '::1/128'])
  })
  it('allows metadata only when named', () => {
    const p = new AddressPolicy({ allow: ['169.254.169.254/32', 'fd00:ec2::254/128'] })
    assert.deepEqual(p.check('169.254.169.254', 4), { ok: true })
    assert.deepEqual(p.check('fd00:ec2::254', 6), { ok: true })
    assert.deepEqual(p.check('169.254.169.253', 4), { ok: false, range: '169.254.0.0/16' })
  })
  it('an IPv6 allow never reaches IPv4 (node BlockList would match ::/0 against every IPv4 address)', () => {
    const p = new AddressPolicy({ allow: ['::/0'] })
    assert.deepEqual(p.check('::1', 6), { ok: true })
    assert.deepEqual(p.check('127.0.0.1', 4), { ok: false, range: '127.0.0.0/8' })
  })
  it('an IPv4 allow never reaches IPv6 outside the embedding forms', () => {
    const p = new AddressPolicy({ allow: ['0.0.0.0/0'] })
    assert.deepEqual(p.check('10.0.0.1', 4), { ok: true })
    assert.deepEqual(p.check('fd00:ec2::254', 6), { ok: false, range: 'fc00::/7' })
  })
  it('an explicit allow of the mapped range is honoured as written', () => {
    const p = new AddressPolicy({ allow: ['::ffff:7f00:1/128'] })
    assert.deepEqual(p.check('::ffff:127.0.0.1', 6), { ok: true })
    assert.deepEqual(p.check('127.0.0.1', 4), { ok: false, range: '127.0.0.0/8' })
  })
})

describe('AddressPolicy validates allow CIDRs at construction', () => {
  const bad: readonly (readonly [string, RegExp])[] = [
    ['10.1.2.3/24', /host bits are set; did you mean '10\.1\.2\.0\/24'/],
    ['::1/64', /host bits are set; did you mean '::\/64'/],
    ['10.0.0.0/33', /prefix must be a whole number from 0 to 32/],
    ['::/129', /from 0 to 128/],
    ['10.0.0.0/08', /prefix/],
    ['10.0.0.0/-1', /prefix/],
    ['10.0.0.0/ 8', /prefix/],
    ['10.0.0.0/', /prefix/],
    ['10.0.0.0', /expected address\/prefix/],
    ['10.0.0.0/8/8', /expected address\/prefix/],
    ['010.0.0.0/8', /not an IPv4 dotted quad or an IPv6 address/],
    ['10.0/16', /not an IPv4/],
    ['example.com/32', /not an IPv4/],
    ['fe80::%eth0/64', /not an IPv4/],
    ['', /expected address\/prefix/],
  ]
  for (const [cidr, message] of bad) {
    it(`refuses ${JSON.stringify(cidr)}`, () => {
      assert.throws(() => new AddressPolicy({ allow: [cidr] }), message)
    })
  }
  it('accepts well-formed CIDRs of both families', () => {
    assert.deepEqual(parseCidr('10.1.2.0/24'), { address: '10.1.2.0', prefix: 24, family: 4 })
    assert.deepEqual(parseCidr('0.0.0.0/0'), { address: '0.0.0.0', prefix: 0, family: 4 })
    assert.deepEqual(parseCidr('fd00:ec2::/32'), { address: 'fd00:ec2::', prefix: 32, family: 6 })
    assert.deepEqual(parseCidr('::1/128'), { address: '::1', prefix: 128, family: 6 })
  })
})
