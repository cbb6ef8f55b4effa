import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { OperatorError } from '../errors.ts'
import { parseConfig } from '../config/load.ts'

const FILE = '/etc/keyvalet/keyvalet.yaml'
const connector = (extra: string) => `connectors:
  svc:
    upstream: https://api.example.com
${extra}    rules: [{ id: r, methods: [GET], path: /a, severity: read }]
`

function refusal(text: string): string {
  try {
    parseConfig(text, FILE)
  } catch (err) {
    assert.ok(err instanceof OperatorError, String(err))
    return err.message
  }
  assert.fail('expected the configuration to be refused')
}

describe('every field that holds an address is checked at load, with its line', () => {
  const cases: [string, string, string][] = [
    ['a prefix out of range in a connector\'s allow_addresses', `version: 1\n${connector('    allow_addresses: [127.0.0.1/32, 127.0.0.1/33]\n')}`,
      ':5: connectors.svc.allow_addresses[1]: invalid CIDR "127.0.0.1/33": prefix must be a whole number from 0 to 32'],
    ['a bare address in allow_addresses', `version: 1\n${connector('    allow_addresses: [10.0.0.1]\n')}`,
      ':5: connectors.svc.allow_addresses[0]: invalid CIDR "10.0.0.1": expected address/prefix'],
    ['host bits in allow_addresses', `version: 1\n${connector('    allow_addresses: [10.1.2.3/8]\n')}`,
      ":5: connectors.svc.allow_addresses[0]: invalid CIDR \"10.1.2.3/8\": host bits are set; did you mean '10.0.0.0/8'?"],
    ['a tunnel\'s allow_addresses', `version: 1\ntunnels:\n  - { to: "registry.npmjs.org:443", allow_addresses: [fd00::/300] }\n${connector('')}`,
      ':3: tunnels[0].allow_addresses[0]: invalid CIDR "fd00::/300": prefix must be a whole number from 0 to 128'],
    ['the upstream proxy\'s allow_addresses', `version: 1\nupstream_proxy:\n  url: http://proxy.corp:3128\n  allow_addresses: [10.0.0.0/40]\n${connector('')}`,
      ':4: upstream_proxy.allow_addresses[0]: invalid CIDR "10.0.0.0/40"'],
    ['a connector\'s upstream proxy\'s allow_addresses', `version: 1\n${connector('    upstream_proxy:\n      url: http://proxy.corp:3128\n      allow_addresses: [nope]\n')}`,
      ':7: connectors.svc.upstream_proxy.allow_addresses[0]: invalid CIDR "nope"'],
    ['a DNS server that is a name', `version: 1\ndns:\n  servers: [9.9.9.9, resolver.corp]\n${connector('')}`,
      ':3: dns.servers[1]: must be an IP address, ip:port or [ipv6]:port'],
    ['a DNS server port out of range', `version: 1\ndns:\n  servers: ["9.9.9.9:70000"]\n${connector('')}`,
      ':3: dns.servers[0]: must be an IP address'],
    ['a listen host in hex', `version: 1\nlisten: { gateway: "0x7f000001:8787" }\n${connector('')}`,
      ':2: listen.gateway: "0x7f000001" is not a DNS name or a canonical IP address (ipv4 ambiguous)'],
    ['a listen port out of range', `version: 1\nlisten: { forward: "127.0.0.1:65536" }\n${connector('')}`,
      ':2: listen.forward: must be host:port with a port from 0 to 65535, e.g. 127.0.0.1:8789'],
    ['a tunnel to a shortened IPv4 literal', `version: 1\ntunnels: ["127.1:443"]\n${connector('')}`,
      ':2: tunnels[0]: "127.1" is not a DNS name or a canonical IP address (ipv4 ambiguous)'],
    ['a tunnel to port 0', `version: 1\ntunnels: ["registry.npmjs.org:0"]\n${connector('')}`,
      ':2: tunnels[0]: must be host:port with a port from 1 to 65535'],
    ['an upstream host in octal (which the URL parser would read as 127.0.0.1)', 'version: 1\nconnectors:\n  svc:\n    upstream: https://0177.0.0.1\n    rules: []\n',
      ':4: connectors.svc.upstream: "0177.0.0.1" is not a DNS name or a canonical IP address (ipv4 leading zero)'],
    ['an OAuth token endpoint on a decimal IPv4', `version: 1\nconnectors:\n  svc:\n    upstream: https://api.example.com\n    credential:\n      source: oauth_client\n      inject: bearer\n      oauth_client: { token_url: "https://2130706433/token", client_id: c, client_secret: s }\n    rules: []\n`,
      ':8: connectors.svc.credential.oauth_client.token_url: "2130706433" is not a DNS name or a canonical IP address (ipv4 ambiguous)'],
    ['a gateway_url over https', `version: 1\nlisten: { gateway_url: "https://keyvalet.internal:8787" }\n${connector('')}`,
      ':2: listen.gateway_url: must be an http:// URL'],
    ['a gateway_url with a path', `version: 1\nlisten: { gateway_url: "http://keyvalet.internal:8787/github" }\n${connector('')}`,
      ':2: listen.gateway_url: must be http://host:port with nothing after it'],
    ['a gateway_url host in hex', `version: 1\nlisten: { gateway_url: "http://0x7f000001:8787" }\n${connector('')}`,
      ':2: listen.gateway_url: "0x7f000001" is not a DNS name or a canonical IP address'],
    ['a forward_url without a forward proxy', `version: 1\nlisten: { forward_url: "http://keyvalet.internal:8789" }\n${connector('')}`,
      ':2: listen.forward_url: there is no forward proxy: set listen.forward too'],
  ]
  for (const [what, text, expected] of cases) {
    it(what, () => {
      const message = refusal(text)
      assert.ok(message.includes(`${FILE}${expected}`), `${message}\n  expected to contain: ${FILE}${expected}`)
    })
  }

  it('accepts what is valid, in canonical form', () => {
    const config = parseConfig(`version: 1
listen: { gateway: "[::1]:8787", forward: "LOCALHOST:8789" }
dns: { servers: ["9.9.9.9", "9.9.9.9:5353", "[2620:fe::fe]:53", "::1"] }
tunnels: ["Registry.NPMjs.org:443", { to: "[0:0::1]:8443", allow_addresses: ["::1/128"] }]
${connector('    allow_addresses: [127.0.0.0/8, "::1/128"]\n')}`, FILE)
    assert.deepEqual(config.gateway, { host: '::1', port: 8787 })
    assert.deepEqual(config.forward, { host: 'localhost', port: 8789 })
    assert.deepEqual([...config.tunnels.keys()], ['registry.npmjs.org:443', '::1:8443'])
    const urls = parseConfig(`version: 1\nlisten: { forward: "0.0.0.0:8789", gateway_url: "http://Keyvalet.Internal:8787", forward_url: "http://keyvalet.internal:8789/" }\n${connector('')}`, FILE)
    assert.equal(urls.gatewayUrl?.href, 'http://keyvalet.internal:8787/')
    assert.equal(urls.forwardUrl?.href, 'http://keyvalet.internal:8789/')
  })
})
