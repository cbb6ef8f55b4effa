import Type from 'typebox'
import { toKeyvaletError } from '../../errors.ts'
import { AUDIT_KEY_SECRET } from '../../runtime.ts'
import type { AdminDeps } from '../deps.ts'
import { defineRoute, type AdminRoute } from '../route.ts'

/** A check that takes longer than this fails (a store that hangs is not ready). */
const CHECK_TIMEOUT_MS = 2000
/** The audit engine is keeping up while its oldest uncommitted batch is younger than this. */
const AUDIT_LAG_LIMIT_MS = 5000

const CHECK_NAMES = ['store', 'master_key', 'config', 'audit', 'listeners'] as const
type CheckName = (typeof CHECK_NAMES)[number]

const READINESS = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('not_ready')]),
  /** Each check: `ok`, or why it fails (operator words; never a secret). */
  checks: Type.Record(Type.String(), Type.String()),
  failing: Type.Array(Type.String()),
})

/**
 * `/healthz`: the process answers (liveness: restart it if not). `/readyz`: it can serve now
 * (readiness: send it traffic only if so) — the store answers a read, the loaded master key opens
 * the audit key's vault record, a compiled configuration is in force, the audit engine is open and
 * keeping up, and every data-plane listener is open. 503 naming each failing check otherwise.
 * Both are public (probes carry no token) and say nothing a caller could use: check names and
 * short reasons only.
 */
export function healthRoutes(deps: AdminDeps): readonly AdminRoute[] {
  const checks: Record<CheckName, () => Promise<string | undefined>> = {
    async store() {
      await deps.store.sessions.get('ses_readiness_probe')
      return undefined
    },
    async master_key() {
      const key = await deps.vault.openOptional(AUDIT_KEY_SECRET)
      if (key === undefined) return 'the audit key is not in the vault yet'
      key.fill(0)
      return undefined
    },
    async config() {
      return deps.config().policy.connectors instanceof Map ? undefined : 'no compiled configuration'
    },
    async audit() {
      if (!deps.audit.available) return 'the audit log cannot write: new requests are refused'
      const lag = deps.audit.lagMs
      return lag < AUDIT_LAG_LIMIT_MS ? undefined : `the oldest uncommitted audit batch has waited ${Math.round(lag)} ms`
    },
    async listeners() {
      return deps.proxy.stats().listening ? undefined : 'a data-plane listener is not open'
    },
  }
  return [
    defineRoute({
      method: 'GET', path: '/healthz', roles: 'public', action: 'health.live', summary: 'Liveness: the process answers.',
      response: Type.Object({ status: Type.Literal('alive') }),
      handle: async () => ({ kind: 'json', body: { status: 'alive' } }),
    }),
    defineRoute({
      method: 'GET', path: '/readyz', roles: 'public', action: 'health.ready', summary: 'Readiness: store, master key, configuration, audit writer and listeners; 503 naming each failing check.',
      response: READINESS,
      handle: async () => {
        const results = await Promise.all(CHECK_NAMES.map(async (name) => [name, await bounded(checks[name])] as const))
        const failing = results.filter(([, why]) => why !== undefined).map(([name]) => name)
        const body = { status: failing.length === 0 ? 'ready' : 'not_ready', checks: Object.fromEntries(results.map(([name, why]) => [name, why ?? 'ok'])), failing }
        return { kind: 'json', status: failing.length === 0 ? 200 : 503, body }
      },
    }),
  ]
}

/** The check's failure, in words safe to answer (a KeyvaletError's code, never its detail), or undefined. */
async function bounded(check: () => Promise<string | undefined>): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<string>((resolve) => { timer = setTimeout(() => resolve(`no answer within ${CHECK_TIMEOUT_MS} ms`), CHECK_TIMEOUT_MS) })
  try {
    return await Promise.race([check().catch((err: unknown) => `failed (${toKeyvaletError(err).code === 'internal_error' ? 'error' : toKeyvaletError(err).code})`), timeout])
  } finally {
    clearTimeout(timer)
  }
}
