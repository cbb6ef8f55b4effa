import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseConfig } from '../../config/load.ts'
import { OperatorError } from '../../errors.ts'
import type { OAuthClientOptions } from './oauth-client.ts'

const FILE = '/etc/keyvalet/keyvalet.yaml'

const configWith = (block: string): string => `version: 1
connectors:
  svc:
    upstream: https://svc.example.com
    credential:
      source: oauth_client
      inject: bearer
${block.split('\n').map((l) => `      ${l}`).join('\n')}
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

describe('oauth_client configuration', () => {
  it('compiles a block with audience and scopes', () => {
    const config = parseConfig(configWith('oauth_client:\n  token_url: https://auth.example.com/token\n  client_id: svc\n  client_secret: svc-secret\n  scopes: [reports]\n  audience: https://svc.example.com'), FILE)
    const options = config.policy.connectors.get('svc')?.credential?.source.options as OAuthClientOptions
    assert.equal(options.tokenUrl.href, 'https://auth.example.com/token')
    assert.equal(options.clientSecret, 'svc-secret')
    assert.equal(options.audience, 'https://svc.example.com')
    assert.equal(options.refreshBeforeMs, 60_000)
    assert.equal(options.clientAuth, 'basic')
  })

  const refused = [
    ['a missing client_secret', 'oauth_client:\n  token_url: https://a.example/token\n  client_id: svc', ':8: connectors.svc.credential.oauth_client: missing required field client_secret'],
    ['a missing token_url', 'oauth_client:\n  client_id: svc\n  client_secret: s', ':8: connectors.svc.credential.oauth_client: missing required field token_url'],
    ['a bad token_url', 'oauth_client:\n  token_url: "https://a.example/token#frag"\n  client_id: svc\n  client_secret: s', ':9: connectors.svc.credential.oauth_client.token_url: must not contain a fragment'],
    ['an oauth_user block on an oauth_client connector', 'oauth_client:\n  token_url: https://a.example/token\n  client_id: svc\n  client_secret: s\noauth_user:\n  authorize_url: https://a.example/a\n  token_url: https://a.example/t\n  client_id: x', ':12: connectors.svc.credential.oauth_user: only applies to source: oauth_user'],
    ['a refresh_before_s out of range', 'oauth_client:\n  token_url: https://a.example/token\n  client_id: svc\n  client_secret: s\n  refresh_before_s: 99999', ':12: connectors.svc.credential.oauth_client.refresh_before_s:'],
  ] as const
  for (const [what, block, expected] of refused) {
    it(`refuses ${what} with file:line:field`, () => {
      const message = refusal(configWith(block))
      assert.ok(message.includes(`${FILE}${expected}`), message)
    })
  }
})
