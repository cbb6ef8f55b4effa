import type { CredentialKind } from './kind.ts'
import { basic } from './kinds/basic.ts'
import { bearer } from './kinds/bearer.ts'
import { header } from './kinds/header.ts'
import { query } from './kinds/query.ts'
import { awsSigv4 } from './kinds/aws-sigv4.ts'

/** Every credential kind keyvalet knows, by its `inject` name, in the order the reference lists them: one line per kind. */
export const CREDENTIAL_KINDS = {
  bearer,
  basic,
  header,
  query,
  aws_sigv4: awsSigv4,
} as const satisfies Readonly<Record<string, CredentialKind>>

/** The `inject` names. */
export type InjectKind = keyof typeof CREDENTIAL_KINDS

const BY_NAME: ReadonlyMap<string, CredentialKind> = new Map(Object.values(CREDENTIAL_KINDS).map((k) => [k.kind, k]))

/** Every kind, in registry order. */
export const ALL_CREDENTIAL_KINDS: readonly CredentialKind[] = [...BY_NAME.values()]

/** The kind of a compiled binding: config/compile.ts only makes bindings of registered kinds. */
export function credentialKind(name: string): CredentialKind {
  const kind = BY_NAME.get(name)
  if (kind === undefined) throw new Error(`credential binding of unknown kind ${name}`)
  return kind
}
