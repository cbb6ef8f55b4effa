import Type from 'typebox'
import { secretField } from '../../schema-kit/patterns.ts'
import type { Connector } from '../../model/policy.ts'
import { clientSecretField, COMMON_FIELDS, compileCommon, type CommonOptions } from '../oauth/options.ts'
import { refreshFailed, requestToken } from '../oauth/token-endpoint.ts'
import type { CredentialSource, SourceDefinition, SourceDeps, Token } from '../source.ts'
import { TokenCache } from '../token-cache.ts'

export interface OAuthClientOptions extends CommonOptions {
  readonly clientSecret: string
  readonly audience: string | undefined
}

const block = Type.Object({
  ...COMMON_FIELDS,
  client_secret: secretField('Vault secret holding the client secret (read at each token request, so a `secret set` applies at the next one).'),
  audience: Type.Optional(Type.String({ minLength: 1, description: 'Sent as the `audience` parameter, for servers that want one (Auth0 and others).' })),
}, {
  additionalProperties: false,
  description: 'An OAuth2 client-credentials token (a service account, RFC 6749 §4.4): fetched by keyvalet, kept in memory until shortly before it expires, fetched again after the upstream refused it (401).',
})

/**
 * oauth_client: one token per connector (the client's own identity, the same for every session),
 * never stored, fetched at most once at a time.
 */
export const oauthClient: SourceDefinition<OAuthClientOptions, typeof block> = {
  type: 'oauth_client',
  summary: 'an OAuth2 client-credentials token (`credential.oauth_client`), cached until shortly before it expires',
  block,
  needsSecret: false,
  compile(r, binding, problem) {
    return { ...compileCommon(r, binding.allowInsecure, problem), clientSecret: r.client_secret, audience: r.audience }
  },
  secrets: clientSecretField,
  create: (options, deps, connector) => new OAuthClientSource(options, deps, connector),
}

const KEY = 'client'

class OAuthClientSource implements CredentialSource {
  readonly #options: OAuthClientOptions
  readonly #deps: SourceDeps
  readonly #connector: Connector
  readonly #cache: TokenCache

  constructor(options: OAuthClientOptions, deps: SourceDeps, connector: Connector) {
    this.#options = options
    this.#deps = deps
    this.#connector = connector
    this.#cache = new TokenCache(deps.clock, options.refreshBeforeMs, { vault: deps.vault, locks: deps.locks, namespace: `oauth_client:${connector.name}` })
  }

  get(): Promise<Token> {
    return this.#cache.get(KEY, () => this.#fetch())
  }

  rejected(_ctx: unknown, token: Token): boolean {
    this.#cache.invalidate(KEY, token)
    return true
  }

  async #fetch(): Promise<Token> {
    const { clientId, clientAuth, scopes, audience, tokenUrl } = this.#options
    const issuedAt = this.#deps.clock()
    try {
      const secret = (await this.#deps.vault.open(this.#options.clientSecret)).toString('utf8')
      const grant: Record<string, string> = { grant_type: 'client_credentials' }
      if (scopes.length > 0) grant.scope = scopes.join(' ')
      if (audience !== undefined) grant.audience = audience
      const granted = await requestToken(this.#deps.http, this.#connector, tokenUrl, grant, { clientId, clientSecret: secret, method: clientAuth })
      return {
        value: granted.accessToken,
        expiresAt: granted.expiresIn === undefined ? undefined : issuedAt + granted.expiresIn * 1000,
        label: `oauth_client:${this.#connector.name}:${clientId}`,
      }
    } catch (err) {
      throw refreshFailed(err)
    }
  }
}
