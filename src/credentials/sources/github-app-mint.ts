import { createPrivateKey, sign, type KeyObject } from 'node:crypto'
import { KeyvaletError } from '../../errors.ts'
import type { Connector } from '../../model/policy.ts'
import { jsonObject, type TokenHttp } from '../token-http.ts'

/** GitHub's permission levels, weakest first. */
export const ACCESS_LEVELS = ['read', 'write', 'admin'] as const
export type AccessLevel = (typeof ACCESS_LEVELS)[number]
export type Permissions = Readonly<Record<string, AccessLevel>>

/** What one installation token is asked for. */
export interface MintRequest {
  readonly apiUrl: URL
  readonly appId: string
  readonly installationId: number
  /** Repository names within the installation's account (GitHub's `repositories` takes names, not owner/name). */
  readonly repositories: readonly string[]
  /** Owner each repository must belong to, when the configuration named one (checked on the answer). */
  readonly owner: string | undefined
  readonly permissions: Permissions
}

export interface Minted {
  readonly token: string
  readonly expiresAt: number
}

/** The App JWT lives at most this long; GitHub refuses an `exp` more than 10 minutes ahead. */
const JWT_LIFETIME_S = 9 * 60
/** `iat` is set this far in the past so that a GitHub clock slightly behind ours still accepts it. */
const CLOCK_SKEW_S = 60

/** The App's RSA private key from its PEM (PKCS#1 as GitHub hands it out, or PKCS#8); throws credential_unavailable otherwise. */
export function appPrivateKey(pem: Buffer, secret: string): KeyObject {
  let key: KeyObject
  try {
    key = createPrivateKey({ key: pem, format: 'pem' })
  } catch {
    throw unavailable({ secret, why: 'private_key_invalid', message: 'the secret is not a PEM private key' })
  }
  if (key.asymmetricKeyType !== 'rsa') throw unavailable({ secret, why: 'private_key_invalid', message: `GitHub App keys are RSA (RS256), this one is ${key.asymmetricKeyType ?? 'unknown'}` })
  return key
}

/**
 * The App's own JWT (RS256; iss = app id), which GitHub accepts only on the /app endpoints.
 * node:crypto signs it in a few lines: the header and claims are fixed, so a JOSE library would
 * add nothing but a second code path to keep in step.
 */
export function appJwt(key: KeyObject, appId: string, nowMs: number): string {
  const now = Math.floor(nowMs / 1000)
  const part = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const input = `${part({ alg: 'RS256', typ: 'JWT' })}.${part({ iat: now - CLOCK_SKEW_S, exp: now + JWT_LIFETIME_S, iss: appId })}`
  return `${input}.${sign('RSA-SHA256', Buffer.from(input), key).toString('base64url')}`
}

/**
 * POST {api}/app/installations/{id}/access_tokens with the repositories and permissions, through
 * TokenHttp (the connector's egress rules and CA). Checks that the answer is a token scoped no wider
 * than asked. Failures: GitHub refusing (4xx) is credential_unavailable — the configuration or the
 * installation must change; GitHub failing (5xx), unreachable or answering nonsense is
 * credential_refresh_failed. `detail` carries GitHub's status and (sanitised) message, never a token.
 */
export async function mintInstallationToken(http: TokenHttp, connector: Connector, req: MintRequest, jwt: string): Promise<Minted> {
  const base = req.apiUrl.href.replace(/\/+$/, '')
  const url = new URL(`${base}/app/installations/${req.installationId}/access_tokens`)
  const where = { source: 'github_app', app_id: req.appId, installation_id: req.installationId, repositories: req.repositories, permissions: req.permissions }
  let res
  try {
    res = await http.request(url, {
      method: 'POST',
      headers: {
        accept: 'application/vnd.github+json',
        authorization: `Bearer ${jwt}`,
        'content-type': 'application/json',
        'x-github-api-version': '2022-11-28',
      },
      body: JSON.stringify({ repositories: req.repositories, permissions: req.permissions }),
    }, connector)
  } catch (err) {
    throw new KeyvaletError('credential_refresh_failed', { detail: { ...where, why: 'token_endpoint_unreachable', message: clean(String((err as Error).message ?? err), jwt) }, cause: err, secrets: [jwt] })
  }
  const body = jsonObject(res.body)
  if (res.status !== 201 && res.status !== 200) {
    const github = { ...where, why: 'mint_refused', status: res.status, github_message: clean(messageOf(body), jwt) }
    throw res.status >= 400 && res.status < 500 ? unavailable(github, [jwt]) : new KeyvaletError('credential_refresh_failed', { detail: github, secrets: [jwt] })
  }
  const answer = body as { token?: unknown; expires_at?: unknown; permissions?: unknown; repositories?: unknown } | undefined
  const expiresAt = typeof answer?.expires_at === 'string' ? Date.parse(answer.expires_at) : Number.NaN
  if (typeof answer?.token !== 'string' || !/^[\x21-\x7e]{1,1024}$/.test(answer.token) || !Number.isFinite(expiresAt)) {
    throw new KeyvaletError('credential_refresh_failed', { detail: { ...where, why: 'mint_response_invalid', status: res.status }, secrets: [jwt] })
  }
  const wider = widerThanAsked(req, answer.permissions, answer.repositories)
  if (wider !== undefined) throw new KeyvaletError('credential_refresh_failed', { detail: { ...where, why: 'mint_scope_mismatch', message: wider }, secrets: [jwt, answer.token] })
  return { token: answer.token, expiresAt }
}

/**
 * Why the token GitHub returned is scoped wider than asked (undefined when it is not): every
 * permission at most the level asked (GitHub adds metadata: read to every token), and exactly the
 * repositories asked, under the configured owner.
 */
function widerThanAsked(req: MintRequest, permissions: unknown, repositories: unknown): string | undefined {
  if (typeof permissions !== 'object' || permissions === null) return 'the answer lists no permissions'
  for (const [name, level] of Object.entries(permissions)) {
    const asked = req.permissions[name] ?? (name === 'metadata' ? 'read' : undefined)
    const rank = ACCESS_LEVELS.indexOf(level as AccessLevel)
    if (asked === undefined || rank === -1 || rank > ACCESS_LEVELS.indexOf(asked)) return `permission ${name}: ${String(level)} was not asked for`
  }
  if (!Array.isArray(repositories)) return 'the answer lists no repositories'
  const names = new Set<string>()
  for (const repo of repositories as { name?: unknown; full_name?: unknown }[]) {
    const name = typeof repo?.name === 'string' ? repo.name : ''
    if (!req.repositories.includes(name)) return `repository ${JSON.stringify(name)} was not asked for`
    if (req.owner !== undefined && repo.full_name !== `${req.owner}/${name}`) return `repository ${JSON.stringify(repo.full_name)} is not owned by ${req.owner}`
    names.add(name)
  }
  if (names.size !== req.repositories.length) return 'the answer lists fewer repositories than asked'
  return undefined
}

function unavailable(detail: Record<string, unknown>, secrets: readonly string[] = []): KeyvaletError {
  return new KeyvaletError('credential_unavailable', { detail: { source: 'github_app', ...detail }, secrets })
}


function messageOf(body: unknown): string {
  const message = (body as { message?: unknown } | undefined)?.message
  return typeof message === 'string' ? message : '(no message)'
}

/** GitHub's words for the audit: printable, bounded, and never the JWT even if something echoed it. */
function clean(text: string, jwt: string): string {
  return text.split(jwt).join('[jwt]').replace(/[^\x20-\x7e]/g, '?').slice(0, 300)
}
