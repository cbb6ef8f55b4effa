import Type from 'typebox'
import { KeyvaletError } from '../../errors.ts'
import { secretField } from '../../schema-kit/patterns.ts'
import type { Connector } from '../../model/policy.ts'
import { clientSecretField, COMMON_FIELDS, compileCommon, endpointUrl, type CommonOptions } from '../oauth/options.ts'
import { refreshFailed, requestToken, TokenEndpointError } from '../oauth/token-endpoint.ts'
import { MAX_CONNECTOR_NAME, notConnected, readUserToken, recordFromGrant, userTokenName, writeUserToken, type UserTokenRecord } from '../oauth/user-tokens.ts'
import type { CredentialSource, SourceContext, SourceDefinition, SourceDeps, Token } from '../source.ts'
import { SingleFlight } from '../single-flight.ts'
import { isFresh } from '../token-cache.ts'

export interface OAuthUserOptions extends CommonOptions {
  readonly authorizeUrl: URL
}

const block = Type.Object({
  authorize_url: Type.String({ minLength: 1, description: 'The authorization endpoint the operator opens in a browser during `keyvalet oauth connect`.' }),
  ...COMMON_FIELDS,
  client_secret: Type.Optional(secretField('Vault secret holding the client secret. Leave out for a public client (PKCE only).')),
}, {
  additionalProperties: false,
  description: "The invoking user's own OAuth token (authorization code with PKCE). Each user connects once with `keyvalet oauth connect --connector C --user U`; keyvalet stores the tokens in the vault (oauth.<connector>.<hash of the user id>) and refreshes them. A user who never connected gets credential_unavailable.",
})

/**
 * oauth_user: the token of the session's user, read from the vault on every request (so a
 * `connect` or `disconnect` takes effect at once) and refreshed with its refresh token shortly
 * before it expires or after the upstream refused it; at most one refresh per user at a time.
 */
export const oauthUser: SourceDefinition<OAuthUserOptions, typeof block> = {
  type: 'oauth_user',
  summary: "the invoking user's own OAuth token (`credential.oauth_user`, connected with `keyvalet oauth connect`, refreshed by keyvalet)",
  block,
  needsSecret: false,
  compile(r, binding, problem) {
    if (binding.connector.length > MAX_CONNECTOR_NAME) problem([], `the connector name must be at most ${MAX_CONNECTOR_NAME} characters for oauth_user (its users' token names must fit the vault)`)
    return { ...compileCommon(r, binding.allowInsecure, problem), authorizeUrl: endpointUrl(r.authorize_url, ['authorize_url'], binding.allowInsecure, problem) }
  },
  secrets: clientSecretField,
  create: (options, deps, connector) => new OAuthUserSource(options, deps, connector),
}

class OAuthUserSource implements CredentialSource {
  readonly #options: OAuthUserOptions
  readonly #deps: SourceDeps
  readonly #connector: Connector
  /**
   * One refresh at a time per stored record (user and access token). Nothing is cached here: the
   * vault is the only source of truth, so a connect (a new record) takes effect on the next
   * request and never meets a token refreshed from the record it replaced.
   */
  readonly #refreshes = new SingleFlight<Token>()
  /** The access token the upstream last refused, per user: never sent again, even if unexpired. */
  readonly #refused = new Map<string, string>()
  /** Whether the user's record had a refresh token when last read (rejected() must answer at once). */
  readonly #refreshable = new Map<string, boolean>()
  /**
   * The refresh token the server declared dead (invalid_grant), per user: not presented again,
   * so requests fail at once instead of each asking the server, until the user connects again
   * (which stores another refresh token).
   */
  readonly #dead = new Map<string, string>()

  constructor(options: OAuthUserOptions, deps: SourceDeps, connector: Connector) {
    this.#options = options
    this.#deps = deps
    this.#connector = connector
  }

  async get(ctx: SourceContext): Promise<Token> {
    const user = ctx.session.user
    const record = await this.#read(user)
    // One refresh per record at a time in this process, and under the store's lock of the record
    // across the fleet: whoever waited reads the refreshed record first (#refresh).
    return this.#usable(user, record) ?? this.#refreshes.run(`${user}\n${record.access_token}`, () =>
      this.#deps.locks.exclusive(userTokenName(this.#connector.name, user), () => this.#refresh(user)))
  }

  rejected(ctx: SourceContext, token: Token): boolean {
    const user = ctx.session.user
    this.#refused.set(user, token.value)
    return this.#refreshable.get(user) === true
  }

  async #read(user: string): Promise<UserTokenRecord> {
    const record = await readUserToken(this.#deps.vault, this.#connector.name, user)
    this.#refreshable.set(user, record.refresh_token !== undefined)
    return record
  }

  /** The stored token when it may be sent: fresh and not refused by the upstream. */
  #usable(user: string, record: UserTokenRecord): Token | undefined {
    const token = this.#token(user, record)
    return isFresh(token, this.#deps.clock(), this.#options.refreshBeforeMs) && this.#refused.get(user) !== token.value ? token : undefined
  }

  async #rotatedElsewhere(user: string, used: string): Promise<Token | undefined> {
    const record = await this.#read(user).catch(() => undefined)
    return record === undefined || record.refresh_token === used ? undefined : this.#usable(user, record)
  }

  /** Runs alone per user. Reads again first: another request or process may have refreshed already. */
  async #refresh(user: string): Promise<Token> {
    const record = await this.#read(user)
    const current = this.#usable(user, record)
    if (current !== undefined) return current
    const name = userTokenName(this.#connector.name, user)
    if (record.refresh_token === undefined) throw notConnected(this.#connector.name, name, 'expired_without_refresh_token')
    if (this.#dead.get(user) === record.refresh_token) throw this.#mustReconnect(new TokenEndpointError('refresh_token_dead', { oauth_error: 'invalid_grant' }))
    const issuedAt = this.#deps.clock()
    let next: UserTokenRecord
    try {
      const secret = this.#options.clientSecret === undefined ? undefined : (await this.#deps.vault.open(this.#options.clientSecret)).toString('utf8')
      const granted = await requestToken(this.#deps.http, this.#connector, this.#options.tokenUrl, { grant_type: 'refresh_token', refresh_token: record.refresh_token }, {
        clientId: this.#options.clientId, clientSecret: secret, method: this.#options.clientAuth,
      })
      next = recordFromGrant(user, granted, issuedAt, record)
    } catch (err) {
      // invalid_grant: the refresh token is dead (expired, revoked, reused), unless another
      // keyvalet process rotated it a moment ago and stored the result: then use that.
      const reconnect = err instanceof TokenEndpointError && err.oauthError === 'invalid_grant'
      const rotated = reconnect ? await this.#rotatedElsewhere(user, record.refresh_token) : undefined
      if (rotated !== undefined) return rotated
      if (reconnect) {
        this.#dead.set(user, record.refresh_token)
        throw this.#mustReconnect(err)
      }
      throw refreshFailed(err)
    }
    try {
      await writeUserToken(this.#deps.vault, this.#connector.name, next)
    } catch (err) {
      // The server may have rotated the refresh token: unstored, the user will have to connect again.
      this.#deps.log.error('storing a refreshed OAuth token failed', { connector: this.#connector.name, error: String(err) })
      throw new KeyvaletError('credential_refresh_failed', { detail: { why: 'token_store_failed', secret: name }, cause: err })
    }
    this.#refused.delete(user)
    this.#refreshable.set(user, next.refresh_token !== undefined)
    return this.#token(user, next)
  }

  #mustReconnect(err: unknown): KeyvaletError {
    return refreshFailed(err, `The user's ${this.#connector.name} authorization has expired or was revoked; they must connect again (keyvalet oauth connect). The request was not sent.`)
  }

  #token(user: string, record: UserTokenRecord): Token {
    return { value: record.access_token, expiresAt: record.expires_at, label: `oauth_user:${this.#connector.name}:${user}` }
  }
}
