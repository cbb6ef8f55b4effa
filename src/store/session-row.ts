import type { Grant } from '../model/policy.ts'
import type { Session } from '../model/session.ts'

/**
 * A `sessions` row as both stores keep it (the same column names; grants as JSON with null for
 * no rule list), as a Session. Each store adds the key hash from its own byte type.
 */
export function sessionFromRow(row: Readonly<Record<string, unknown>>): Session {
  const grants = (JSON.parse(String(row.grants)) as { rules: string[] | null }[]).map(
    (g) => ({ ...g, rules: g.rules ?? undefined }) as unknown as Grant,
  )
  return {
    id: String(row.id),
    agent: String(row.agent),
    user: String(row.user),
    workspace: String(row.workspace),
    task: String(row.task),
    grants,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    revokedAt: row.revoked_at === null ? undefined : Number(row.revoked_at),
    ...(row.budget === null || row.budget === undefined ? {} : { budget: Number(row.budget) }),
  }
}

/** Grants as a `sessions` row keeps them. */
export function grantsColumn(grants: readonly Grant[]): string {
  return JSON.stringify(grants.map((g) => ({ ...g, rules: g.rules ?? null })))
}
