import { createHash } from 'node:crypto'
import { KeyvaletError } from '../../errors.ts'
import type { Vault } from '../../vault/vault.ts'
import type { GrantedToken } from './token-endpoint.ts'

/**
 * Users' OAuth tokens in the vault: one secret per (connector, user), named
 * `oauth.<connector>.<first 24 hex of SHA-256(user)>` because user ids may hold any character and
 * vault names may not. The record carries the user id, so a listing can say whose it is and a
 * (theoretical) hash collision reads as "not connected", never as someone else's token.
 * One `vault.put` writes the whole record: a rotated refresh token is stored with its access token
 * or not at all.
 */
export interface UserTokenRecord {
  readonly v: 1
  readonly user: string
  readonly access_token: string
  readonly refresh_token?: string | undefined
  /** Epoch ms after which the access token is expired; absent = the server gave no lifetime. */
  readonly expires_at?: number | undefined
  /** Space-separated granted scope. */
  readonly scope?: string | undefined
  /** Epoch ms of the last connect or refresh. */
  readonly updated_at: number
}

export const USER_TOKEN_PREFIX = 'oauth.'

/** Longest connector name whose token names still fit the vault's 63 characters. */
export const MAX_CONNECTOR_NAME = 63 - USER_TOKEN_PREFIX.length - 1 - 24

export function userTokenName(connector: string, user: string): string {
  return `${USER_TOKEN_PREFIX}${connector}.${createHash('sha256').update(user, 'utf8').digest('hex').slice(0, 24)}`
}

/** The connector a token name belongs to, or undefined when `name` is not a user token name. */
export function connectorOfTokenName(name: string): string | undefined {
  return /^oauth\.([a-z][a-z0-9-]*)\.[0-9a-f]{24}$/.exec(name)?.[1]
}

/** The record after a connect or refresh: a refresh token or scope the server did not resend is kept. */
export function recordFromGrant(user: string, granted: GrantedToken, issuedAt: number, previous?: UserTokenRecord): UserTokenRecord {
  return {
    v: 1,
    user,
    access_token: granted.accessToken,
    refresh_token: granted.refreshToken ?? previous?.refresh_token,
    expires_at: granted.expiresIn === undefined ? undefined : issuedAt + granted.expiresIn * 1000,
    scope: granted.scope ?? previous?.scope,
    updated_at: issuedAt,
  }
}

export async function writeUserToken(vault: Vault, connector: string, record: UserTokenRecord): Promise<void> {
  await vault.put(userTokenName(connector, record.user), Buffer.from(JSON.stringify(record), 'utf8'))
}

/**
 * The user's record, or credential_unavailable (why not_connected) with a message the sandbox may
 * see that says the user must connect first. Other vault failures pass unchanged.
 */
export async function readUserToken(vault: Vault, connector: string, user: string): Promise<UserTokenRecord> {
  const name = userTokenName(connector, user)
  const raw = await vault.openOptional(name)
  if (raw === undefined) throw notConnected(connector, name)
  const record = parseUserToken(raw)
  raw.fill(0)
  if (record === undefined) throw new KeyvaletError('credential_unavailable', { detail: { why: 'token_record_invalid', secret: name } })
  if (record.user !== user) throw notConnected(connector, name)
  return record
}

export function parseUserToken(raw: Buffer): UserTokenRecord | undefined {
  try {
    const r = JSON.parse(raw.toString('utf8')) as Partial<UserTokenRecord>
    if (r.v !== 1 || typeof r.user !== 'string' || typeof r.access_token !== 'string' || typeof r.updated_at !== 'number') return undefined
    if (r.refresh_token !== undefined && typeof r.refresh_token !== 'string') return undefined
    if (r.expires_at !== undefined && typeof r.expires_at !== 'number') return undefined
    return r as UserTokenRecord
  } catch {
    return undefined
  }
}

export function notConnected(connector: string, secret: string, why = 'not_connected'): KeyvaletError {
  return new KeyvaletError('credential_unavailable', {
    message: `The user of this task has not connected their ${connector} account (or must connect it again): an operator runs keyvalet oauth connect --connector ${connector} for them.`,
    detail: { why, secret },
  })
}
