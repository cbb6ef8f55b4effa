import Type from 'typebox'
import { KeyvaletError } from '../../errors.ts'
import { keyvaletOwn, reservedName } from '../../vault/reserved.ts'
import { Vault } from '../../vault/vault.ts'
import type { AdminDeps } from '../deps.ts'
import { invalid } from '../input.ts'
import { defineRoute } from '../route.ts'

/** The largest secret value, as `keyvalet secret set` takes it. */
const MAX_SECRET_BYTES = 64 * 1024
const NAME = Type.Object({ name: Type.String({ minLength: 1, maxLength: 63, description: 'The secret name (a-z, 0-9, ".", "_", "-").' }) })
const TIME = Type.String({ format: 'date-time' })
const SECRET_VIEW = Type.Object({
  name: Type.String(),
  key_id: Type.String({ description: 'Fingerprint of the master key that wraps it.' }),
  created_at: TIME,
  updated_at: TIME,
}, { additionalProperties: false, description: 'Metadata of a stored secret; no call ever returns a value.' })
const ROLES = ['admin'] as const

/** The vault over the admin API, write-only: list metadata, set a value, delete. */
export function secretRoutes(deps: AdminDeps) {
  const view = (s: { name: string; keyId: string; createdAt: number; updatedAt: number }) => ({
    name: s.name, key_id: s.keyId, created_at: new Date(s.createdAt).toISOString(), updated_at: new Date(s.updatedAt).toISOString(),
  })
  /** A name an operator may write: valid, and not one keyvalet or `oauth connect` keeps for itself. */
  const writable = (name: string): string => {
    Vault.validateName(name)
    const reserved = reservedName(name)
    if (reserved !== undefined) throw invalid(reserved)
    return name
  }
  return [
    defineRoute({
      method: 'GET', path: '/v1/secrets', roles: ROLES, action: 'secret.list',
      query: Type.Object({ all: Type.Optional(Type.Boolean({ description: "Also keyvalet's own records (keyvalet.*)." })) }),
      response: Type.Object({ secrets: Type.Array(SECRET_VIEW) }),
      summary: 'Names and metadata of the stored secrets; never a value.',
      async handle({ query }) {
        const list = (await deps.vault.list()).filter((s) => query.all === true || !keyvaletOwn(s.name))
        return { kind: 'json', body: { secrets: list.map(view) } }
      },
    }),
    defineRoute({
      method: 'PUT', path: '/v1/secrets/{name}', roles: ROLES, action: 'secret.set', params: NAME,
      body: Type.Object({ value: Type.String({ minLength: 1, description: 'The value (UTF-8 text, at most 64 KiB). Stored encrypted; never returned.' }) }),
      response: SECRET_VIEW,
      summary: 'Store a secret, or replace its value at once. Write-only: the value is never returned.',
      async handle({ params, body, note }) {
        note({ secret: params.name })
        const value = Buffer.from(body.value, 'utf8')
        try {
          if (value.length > MAX_SECRET_BYTES) throw invalid(`body.value is larger than ${MAX_SECRET_BYTES} bytes`)
          await deps.vault.put(writable(params.name), value)
        } finally {
          value.fill(0)
        }
        const stored = (await deps.vault.list()).find((s) => s.name === params.name)
        if (stored === undefined) throw new KeyvaletError('internal_error', { detail: { why: 'the secret was not there after it was stored' } })
        return { kind: 'json', body: view(stored) }
      },
    }),
    defineRoute({
      method: 'DELETE', path: '/v1/secrets/{name}', roles: ROLES, action: 'secret.delete', params: NAME,
      response: Type.Object({ deleted: Type.String() }),
      summary: 'Remove a secret.',
      async handle({ params, note }) {
        note({ secret: params.name })
        if (!(await deps.vault.delete(writable(params.name)))) throw new KeyvaletError('admin_not_found', { message: `No secret ${params.name}.` })
        return { kind: 'json', body: { deleted: params.name } }
      },
    }),
  ] as const
}
