import type { Static, TSchema } from 'typebox'
import type { Logger } from '../log.ts'
import type { Connector } from '../model/policy.ts'
import type { Session } from '../model/session.ts'
import type { LockRepo } from '../store/store.ts'
import type { Vault } from '../vault/vault.ts'
import type { FieldPath } from '../schema-kit/field-path.ts'
import type { TokenHttp } from './token-http.ts'

/** Who a credential is fetched for: the request's session and connector. */
export interface SourceContext {
  readonly session: Session
  readonly connector: Connector
  /** Aborted when the sandbox has gone; a source may stop waiting, but a shared refresh goes on. */
  readonly signal?: AbortSignal | undefined
}

/** A credential value ready to attach. */
export interface Token {
  readonly value: string
  /** Epoch ms after which the value must not be sent; undefined = until replaced (a static secret). */
  readonly expiresAt?: number | undefined
  /** What the audit record names as the credential (a secret name, `oauth_user:github:alice`); never the value. */
  readonly label: string
}

/**
 * Where a connector's credential value comes from: a static vault secret, a per-user OAuth token,
 * a client-credentials token, a GitHub App installation token... One file per source under
 * sources/, listed in sources/registry.ts. The inject kind (bearer, basic, ...) then places it.
 *
 * Contract: `get` returns a value that is fresh (not expired, refreshed shortly before expiry),
 * or throws a KeyvaletError (credential_unavailable, credential_refresh_failed) whose message is
 * safe for the sandbox — never a stale value, never undefined. At most one refresh per token runs
 * at a time however many requests wait (see token-cache.ts). Sources never log values.
 */
export interface CredentialSource {
  get(ctx: SourceContext): Promise<Token>
  /**
   * The upstream answered 401 to a request carrying `token`. Returns true when a fresh `get` may
   * succeed where this one failed (the source can refresh), after which the request is retried
   * once if its body can be replayed. Static secrets return false (or leave it out).
   */
  rejected?(ctx: SourceContext, token: Token): boolean
  /** Releases timers or connections; called when keyvalet stops. */
  close?(): Promise<void>
}

/** What a source may use at run time. */
export interface SourceDeps {
  readonly vault: Vault
  readonly clock: () => number
  /** Guarded HTTPS client for token endpoints (egress guard, verified TLS, bounded). */
  readonly http: TokenHttp
  readonly log: Logger
  /** The store's locks: a refresh or mint runs under one, once per token across the fleet. */
  readonly locks: LockRepo
}

/**
 * A source kind as the configuration knows it. `block` is the typebox schema of the object named
 * after the kind inside `credential` (e.g. `credential.oauth_user`), merged into the config
 * schema; `compile` gets that object schema-checked with its defaults filled in (only when it is
 * there: a missing block is reported by the config compiler), does the checks JSON Schema cannot,
 * and returns the options `create` gets.
 */
export interface SourceDefinition<Options = unknown, Block extends TSchema = TSchema> {
  readonly type: string
  /** One line for docs/config.md. */
  readonly summary: string
  /** Schema of `credential.<type>`; undefined when the source takes no block (static). */
  readonly block: Block | undefined
  /** Whether `credential.secret` is required (true), forbidden (false), or optional (undefined). */
  readonly needsSecret: boolean | undefined
  compile(block: Static<Block>, binding: { readonly secret: string | undefined; readonly connector: string; readonly allowInsecure: boolean }, problem: (field: FieldPath, message: string) => void): Options
  /**
   * The vault secrets the source reads besides `credential.secret`, each with its field inside
   * `credential.<type>`: `check` and `start` warn about those the vault lacks.
   */
  secrets?(options: Options): readonly { readonly field: FieldPath; readonly name: string }[]
  create(options: Options, deps: SourceDeps, connector: Connector): CredentialSource
}
