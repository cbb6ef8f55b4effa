import Type from 'typebox'
import { KeyvaletError } from '../../errors.ts'
import { urlHostProblem } from '../../schema-kit/addresses.ts'
import { Defaulted, NamedMap } from '../../schema-kit/builders.ts'
import { SEVERITIES, severityRank, type Severity } from '../../model/policy.ts'
import type { SourceContext, SourceDefinition, Token } from '../source.ts'
import { TokenCache } from '../token-cache.ts'
import { ACCESS_LEVELS, appJwt, appPrivateKey, mintInstallationToken, type AccessLevel, type MintRequest, type Permissions } from './github-app-mint.ts'

export interface GitHubAppOptions {
  /** Vault secret holding the App's private key (PEM). */
  readonly secret: string
  readonly appId: string
  readonly installationId: number
  readonly apiUrl: URL
  readonly repositories: readonly string[]
  readonly owner: string | undefined
  /** Per severity, the permissions of a token for a session at that severity (cumulative; absent = no token). */
  readonly permissions: Readonly<Partial<Record<Severity, Permissions>>>
}

/** Installation tokens live an hour; one is replaced this long before it expires. */
const REFRESH_BEFORE_MS = 5 * 60_000
/**
 * GitHub refusing a mint (4xx: unknown installation, repository outside it, wrong key) is a
 * configuration error that the next request would only meet again: it is answered from memory
 * for this long, so an agent's retries do not spend the App's rate limit.
 */
const REFUSAL_HOLD_MS = 30_000
const REPOSITORY = '^([A-Za-z0-9][A-Za-z0-9-]{0,38}/)?[A-Za-z0-9._-]{1,100}$'
/** The highest access level a token may carry for a session at each severity. */
const CEILING: Record<Severity, AccessLevel> = { read: 'read', write: 'write', admin: 'admin' }

const permissionMap = (severity: Severity) => NamedMap(Type.Enum([...ACCESS_LEVELS]), {
  propertyNames: { pattern: '^[a-z][a-z_]{0,63}$', errorMessage: 'must be a GitHub App permission name (lower case, e.g. contents, pull_requests)' },
  description: `Permissions of a token for a session whose grant on this connector is ${severity}${severity === 'read' ? '' : ' (added to, and overriding, those of the lower severities)'}, e.g. { contents: ${CEILING[severity]} }. Levels above ${CEILING[severity]} are refused.`,
})

const block = Type.Object({
  app_id: Type.Integer({ minimum: 1, description: 'The GitHub App\'s id (the JWT issuer).' }),
  installation_id: Type.Integer({ minimum: 1, description: 'The installation of the App on the account that owns the repositories.' }),
  api_url: Defaulted(Type.String({ default: 'https://api.github.com', description: 'GitHub\'s REST API base URL (https://HOST/api/v3 for GitHub Enterprise Server). Reached with this connector\'s allow_addresses and ca_file; http:// only with allow_insecure.' })),
  repositories: Type.Array(Type.String({ pattern: REPOSITORY, errorMessage: 'must be a repository name, or owner/name' }), {
    minItems: 1,
    uniqueItems: true,
    description: 'The repositories every token is limited to: names within the installation\'s account, or owner/name (all with the same owner, which is then checked on every token).',
  }),
  permissions: Type.Object({
    read: Type.Optional(permissionMap('read')),
    write: Type.Optional(permissionMap('write')),
    admin: Type.Optional(permissionMap('admin')),
  }, {
    additionalProperties: false,
    description: 'Token permissions by the session\'s severity on this connector: a task granted github:read gets those under read, github:write those under read and write. A session whose severity has no permissions at or below it gets no token.',
  }),
}, {
  additionalProperties: false,
  description: 'For source: github_app. `secret` names the vault secret holding the App\'s private key (the PEM file GitHub generates). Use inject: bearer for the REST API, inject: basic with username x-access-token for git over HTTPS.',
})

/**
 * GitHub App installation tokens narrowed to the task: the App's private key (credential.secret)
 * signs a short JWT, which buys an installation token limited to the configured repositories and
 * to the permissions of the highest severity the session's grant allows on this connector. Tokens
 * are cached per installation, repositories and permissions, and replaced before they expire or
 * when the API answers 401.
 */
export const githubApp: SourceDefinition<GitHubAppOptions, typeof block> = {
  type: 'github_app',
  summary: 'a GitHub App installation token minted with the App key in `secret`, limited to `github_app.repositories` and the permissions of the session\'s severity',
  needsSecret: true,
  block,

  compile(block, { secret, allowInsecure }, problem) {
    let apiUrl = new URL('https://api.github.com')
    try {
      apiUrl = new URL(block.api_url)
      if (apiUrl.protocol !== 'https:' && !(apiUrl.protocol === 'http:' && allowInsecure)) problem(['api_url'], 'must be an https:// URL (or http:// with the connector\'s allow_insecure)')
      if (apiUrl.username !== '' || apiUrl.password !== '' || apiUrl.search !== '' || apiUrl.hash !== '') problem(['api_url'], 'must not contain user info, a query or a fragment')
      const host = urlHostProblem(block.api_url)
      if (host !== undefined) problem(['api_url'], host)
    } catch {
      problem(['api_url'], 'must be an absolute URL')
    }
    const owners = new Set(block.repositories.map((r) => (r.includes('/') ? r.split('/')[0] : '')))
    if (owners.size > 1) problem(['repositories'], 'all repositories must have the same owner (one installation covers one account); give names alone or owner/name for all')
    const owner = [...owners][0] || undefined
    const permissions: Partial<Record<Severity, Permissions>> = {}
    let merged: Record<string, AccessLevel> = {}
    for (const severity of SEVERITIES) {
      const level = block.permissions[severity] ?? {}
      for (const [name, access] of Object.entries(level)) {
        if (ACCESS_LEVELS.indexOf(access) > ACCESS_LEVELS.indexOf(CEILING[severity])) problem(['permissions', severity, name], `a ${severity} session's token cannot carry ${access} access (at most ${CEILING[severity]})`)
      }
      merged = { ...merged, ...level }
      if (Object.keys(merged).length > 0) permissions[severity] = merged
    }
    if (Object.keys(permissions).length === 0) problem(['permissions'], 'must name at least one permission (without, GitHub would grant every permission of the installation)')
    return {
      secret: secret ?? '',
      appId: String(block.app_id),
      installationId: block.installation_id,
      apiUrl,
      repositories: block.repositories.map((r) => r.split('/').at(-1) ?? r),
      owner,
      permissions,
    }
  },

  create(options, { vault, clock, http, locks }, connector) {
    const cache = new TokenCache(clock, REFRESH_BEFORE_MS, { vault, locks, namespace: `github_app:${connector.name}` })
    const refused = new Map<string, { readonly error: KeyvaletError; readonly until: number }>()
    const scope = (ctx: SourceContext): { key: string; severity: Severity; permissions: Permissions } => {
      const severity = grantedSeverity(ctx)
      const permissions = options.permissions[severity]
      if (permissions === undefined) {
        throw new KeyvaletError('credential_unavailable', { detail: { source: 'github_app', why: 'no_permissions_for_severity', severity } })
      }
      const sorted = Object.fromEntries(Object.entries(permissions).sort(([a], [b]) => a.localeCompare(b)))
      return { key: JSON.stringify([options.installationId, options.repositories, sorted]), severity, permissions: sorted }
    }
    return {
      async get(ctx) {
        const { key, permissions } = scope(ctx)
        const request: MintRequest = { ...options, permissions }
        const label = `github_app:${options.appId}:${options.installationId} repositories=${options.repositories.join(',')} permissions=${Object.entries(permissions).map(([n, l]) => `${n}:${l}`).join(',')}`
        const held = refused.get(key)
        if (held !== undefined && held.until > clock()) throw held.error
        return cache.get(key, async (): Promise<Token> => {
          // The key is opened for each mint, so a rotated key is used from the next token on.
          const privateKey = appPrivateKey(await vault.open(options.secret), options.secret)
          const minted = await mintInstallationToken(http, connector, request, appJwt(privateKey, options.appId, clock())).catch((err: unknown) => {
            if (err instanceof KeyvaletError && err.code === 'credential_unavailable' && err.detail?.why === 'mint_refused') refused.set(key, { error: err, until: clock() + REFUSAL_HOLD_MS })
            throw err
          })
          refused.delete(key)
          return { value: minted.token, expiresAt: minted.expiresAt, label }
        })
      },
      rejected(ctx, token) {
        cache.invalidate(scope(ctx).key, token)
        return true
      },
    }
  },
}

/** The highest severity the session's grants allow on the connector (decide already checked there is one). */
function grantedSeverity(ctx: SourceContext): Severity {
  const grants = ctx.session.grants.filter((g) => g.connector === ctx.connector.name)
  if (grants.length === 0) throw new KeyvaletError('credential_unavailable', { detail: { source: 'github_app', why: 'no_grant_for_connector' } })
  return grants.map((g) => g.maxSeverity).reduce((a, b) => (severityRank(b) > severityRank(a) ? b : a))
}
