import Type, { type Static } from 'typebox'
import type { FieldPath } from '../../schema-kit/field-path.ts'
import { reservedName } from '../../vault/reserved.ts'
import { urlHostProblem } from '../../schema-kit/addresses.ts'
import { Defaulted } from '../../schema-kit/builders.ts'

/** Config fields the OAuth sources share (for `credential.oauth_user` and `credential.oauth_client`). */
export const COMMON_FIELDS = {
  token_url: Type.String({ minLength: 1, description: 'The token endpoint, https:// (http:// only with the connector\'s allow_insecure). Reached with the connector\'s allow_addresses and ca_file, never through a redirect.' }),
  client_id: Type.String({ minLength: 1, description: 'The OAuth client id registered with the authorization server.' }),
  scopes: Defaulted(Type.Array(Type.String({ pattern: '^[\\x21\\x23-\\x5b\\x5d-\\x7e]+$', errorMessage: 'must be one scope without spaces or quotes' }), { default: [], description: 'Scopes to ask for (sent space-separated).' })),
  refresh_before_s: Defaulted(Type.Integer({ minimum: 0, maximum: 3600, default: 60, description: 'A token is replaced this many seconds before it expires, so none expires in flight.' })),
  client_auth: Defaulted(Type.Enum(['basic', 'post'], { default: 'basic', description: 'How the client secret is sent to the token endpoint: basic (HTTP Basic, client_secret_basic) or post (in the form body, client_secret_post).' })),
}

const COMMON = Type.Object(COMMON_FIELDS)

/** The shared fields as compileCommon reads them (defaults filled in), with the block's client secret. */
export type CommonFile = Static<typeof COMMON> & { readonly client_secret?: string | undefined }

export interface CommonOptions {
  readonly tokenUrl: URL
  readonly clientId: string
  /** Vault name of the client secret; undefined for a public client. */
  readonly clientSecret: string | undefined
  readonly scopes: readonly string[]
  readonly refreshBeforeMs: number
  readonly clientAuth: 'basic' | 'post'
}

type Problem = (field: FieldPath, message: string) => void

/** The client secret both OAuth sources read from the vault (none for a public client). */
export function clientSecretField(options: CommonOptions): { field: FieldPath; name: string }[] {
  return options.clientSecret === undefined ? [] : [{ field: ['client_secret'], name: options.clientSecret }]
}

export function compileCommon(raw: CommonFile, allowInsecure: boolean, problem: Problem): CommonOptions {
  const secret = raw.client_secret
  const reserved = secret === undefined ? undefined : reservedName(secret)
  if (reserved !== undefined) problem(['client_secret'], reserved)
  return {
    tokenUrl: endpointUrl(raw.token_url, ['token_url'], allowInsecure, problem),
    clientId: raw.client_id,
    clientSecret: secret,
    scopes: raw.scopes,
    refreshBeforeMs: raw.refresh_before_s * 1000,
    clientAuth: raw.client_auth,
  }
}

/** An absolute https URL (http:// only with the connector's allow_insecure) without user info or fragment. */
export function endpointUrl(text: string, field: FieldPath, allowInsecure: boolean, problem: Problem): URL {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    problem(field, 'must be an absolute URL such as https://auth.example.com/oauth/token')
    return new URL('https://invalid.invalid')
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && allowInsecure)) problem(field, 'must be an https:// URL (or http:// with the connector\'s allow_insecure)')
  if (url.username !== '' || url.password !== '') problem(field, 'must not contain user info (put the client secret in the vault)')
  if (url.hash !== '') problem(field, 'must not contain a fragment')
  const host = urlHostProblem(text)
  if (host !== undefined) problem(field, host)
  return url
}
