import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseConfig } from '../../config/load.ts'
import { OperatorError } from '../../errors.ts'
import { connectorOfTokenName, userTokenName } from '../oauth/user-tokens.ts'
import type { OAuthUserOptions } from './oauth-user.ts'

const FILE = '/etc/keyvalet/keyvalet.yaml'

function configWith(block: string, source = 'oauth_user', name = 'crm'): string {
  return `version: 1
connectors:
  ${name}:
    upstream: https://crm.example.com
    credential:
      source: ${source}
      inject: bearer
${block.split('\n').map((l) => `      ${l}`).join('\n')}
    rules: [{ id: read, methods: [GET], path: /**, severity: read }]
`
}

function refusal(text: string): string {
  try {
    parseConfig(text, FILE)
  } catch (err) {
    assert.ok(err instanceof OperatorError, String(err))
    return err.message
  }
  assert.fail('expected the configuration to be refused')
}

describe('oauth_user configuration', () => {
  it('compiles a full block into options', () => {
    const config = parseConfig(configWith(`oauth_user:
  authorize_url: https://auth.example.com/authorize
  token_url: https://auth.example.com/token
  client_id: kv
  client_secret: crm-client
  scopes: [contacts.read, offline_access]
  refresh_before_s: 120
  client_auth: post`), FILE)
    const source = config.policy.connectors.get('crm')?.credential?.source
    assert.equal(source?.type, 'oauth_user')
    const options = source?.options as OAuthUserOptions
    assert.equal(options.tokenUrl.href, 'https://auth.example.com/token')
    assert.equal(options.authorizeUrl.href, 'https://auth.example.com/authorize')
    assert.deepEqual(options.scopes, ['contacts.read', 'offline_access'])
    assert.equal(options.refreshBeforeMs, 120_000)
    assert.equal(options.clientAuth, 'post')
    assert.equal(options.clientSecret, 'crm-client')
  })

  const refused = [
    ['a missing token_url', 'oauth_user:\n  authorize_url: https://a.example/authorize\n  client_id: kv', ':8: connectors.crm.credential.oauth_user: missing required field token_url'],
    ['a token_url that is not a URL', 'oauth_user:\n  authorize_url: https://a.example/authorize\n  token_url: auth.example.com/token\n  client_id: kv', ':10: connectors.crm.credential.oauth_user.token_url: must be an absolute URL'],
    ['an ftp token_url', 'oauth_user:\n  authorize_url: https://a.example/authorize\n  token_url: ftp://a.example/token\n  client_id: kv', ':10: connectors.crm.credential.oauth_user.token_url: must be an https:// URL'],
    ['an http:// token_url on a connector without allow_insecure', 'oauth_user:\n  authorize_url: https://a.example/authorize\n  token_url: http://a.example/token\n  client_id: kv', ':10: connectors.crm.credential.oauth_user.token_url: must be an https:// URL (or http:// with the connector\'s allow_insecure)'],
    ['user info in authorize_url', 'oauth_user:\n  authorize_url: https://me:pw@a.example/authorize\n  token_url: https://a.example/token\n  client_id: kv', ':9: connectors.crm.credential.oauth_user.authorize_url: must not contain user info'],
    ['a reserved client secret name', 'oauth_user:\n  authorize_url: https://a.example/authorize\n  token_url: https://a.example/token\n  client_id: kv\n  client_secret: keyvalet.ca', ':12: connectors.crm.credential.oauth_user.client_secret: secret names starting with keyvalet. are reserved'],
    ['a client secret named like a user token', 'oauth_user:\n  authorize_url: https://a.example/authorize\n  token_url: https://a.example/token\n  client_id: kv\n  client_secret: oauth.crm.x', ":12: connectors.crm.credential.oauth_user.client_secret: secret names starting with oauth. hold users' OAuth tokens"],
    ['a scope with a space', 'oauth_user:\n  authorize_url: https://a.example/authorize\n  token_url: https://a.example/token\n  client_id: kv\n  scopes: ["a b"]', ':12: connectors.crm.credential.oauth_user.scopes[0]: must be one scope without spaces or quotes'],
    ['credential.secret beside oauth_user', 'secret: nope\noauth_user:\n  authorize_url: https://a.example/authorize\n  token_url: https://a.example/token\n  client_id: kv', ':8: connectors.crm.credential.secret: does not apply to source: oauth_user'],
    ['no oauth_user block', 'secret: x', ':5: connectors.crm.credential: missing required field oauth_user (for source: oauth_user)'],
  ] as const
  for (const [what, block, expected] of refused) {
    it(`refuses ${what} with file:line:field`, () => {
      const message = refusal(configWith(block))
      assert.ok(message.includes(`${FILE}${expected}`), message)
    })
  }

  it('refuses a connector name too long for its token names', () => {
    const name = `c${'x'.repeat(32)}`
    const message = refusal(configWith('oauth_user:\n  authorize_url: https://a.example/authorize\n  token_url: https://a.example/token\n  client_id: kv', 'oauth_user', name))
    assert.ok(message.includes(`connectors.${name}.credential.oauth_user: the connector name must be at most 32 characters`), message)
  })
})

describe('userTokenName', () => {
  it('gives a valid vault name for any user id, distinct per user and connector, and names its connector', () => {
    const users = ['alice', 'Alice', 'bob@example.com', 'ünïcode user', '../../etc', 'x'.repeat(500), '']
    const names = users.map((u) => userTokenName('crm', u))
    for (const n of names) {
      assert.match(n, /^[a-z0-9][a-z0-9._-]{0,62}$/)
      assert.equal(connectorOfTokenName(n), 'crm')
    }
    assert.equal(new Set(names).size, users.length)
    assert.notEqual(userTokenName('crm', 'alice'), userTokenName('crm2', 'alice'))
    assert.equal(userTokenName(`c${'x'.repeat(31)}`, 'alice').length, 63)
    assert.equal(connectorOfTokenName('crm-client-secret'), undefined)
  })
})
