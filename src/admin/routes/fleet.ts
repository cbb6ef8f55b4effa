import Type from 'typebox'
import { INSTANCE_STALE_MS } from '../../config/instance-report.ts'
import type { AdminDeps } from '../deps.ts'
import { defineRoute } from '../route.ts'

const VERSION = Type.String({ description: 'A configuration version (cfg_ and 16 hex digits), as GET /v1/config and audit records name it.' })
const PUSHED_SEQ = Type.Union([Type.Integer(), Type.Null()], { description: 'The sequence number of the pushed policy in force over its file (keyvalet config push), or null: its file alone.' })
const FLEET = Type.Object({
  instance: Type.String({ description: 'The instance that answered (its audit chain id).' }),
  config_version: VERSION,
  pushed_seq: PUSHED_SEQ,
  consistent: Type.Boolean({ description: 'Whether every running instance serves under the same configuration version.' }),
  versions: Type.Array(Type.Object({ config_version: VERSION, instances: Type.Integer() }), { description: 'Each version in force somewhere, with how many instances run it, most first.' }),
  master_keys_consistent: Type.Boolean({ description: 'Whether every running instance seals new records under the same master key (the first of its master_key_ids); during a rotation they may differ (docs/deploy.md).' }),
  instances: Type.Array(Type.Object({
    instance: Type.String(),
    host: Type.String(),
    pid: Type.Integer(),
    config_version: VERSION,
    pushed_seq: PUSHED_SEQ,
    master_key_ids: Type.Array(Type.String(), { description: 'Ids (public fingerprints) of the master keys the instance holds, the one it seals under first; empty from a keyvalet that does not report them.' }),
    started_at: Type.String({ description: 'ISO 8601.' }),
    seen_at: Type.String({ description: 'When the instance last reported (at start, after each reload, and every 10 s), ISO 8601.' }),
  }), { description: `Every instance on this store that reported within the last ${INSTANCE_STALE_MS / 1000} s, by start.` }),
})

/**
 * The fleet as the store knows it: each keyvalet instance on this store (every `keyvalet start`,
 * each worker), the configuration version it serves under, the pushed policy in force if any,
 * and the master keys it holds (docs/deploy.md, "Configuration in a fleet", "Master-key rotation
 * in a fleet"): this is where an operator sees that a change reached every instance.
 */
export function fleetRoutes(deps: AdminDeps) {
  return [
    defineRoute({
      method: 'GET', path: '/v1/fleet', roles: ['admin', 'operator', 'auditor'], action: 'fleet.get', response: FLEET,
      summary: 'The keyvalet instances on this store, the configuration version each serves under and the master keys each holds.',
      async handle({ note }) {
        const { version, pushed } = deps.config()
        const reports = await deps.store.instances.list(deps.clock() - INSTANCE_STALE_MS)
        const counts = new Map<string, number>()
        for (const r of reports) counts.set(r.configVersion, (counts.get(r.configVersion) ?? 0) + 1)
        const versions = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([v, n]) => ({ config_version: v, instances: n }))
        const sealing = new Set(reports.map((r) => r.keyIds[0] ?? ''))
        note({ instances: reports.length, versions: versions.length, sealing_keys: sealing.size })
        return {
          kind: 'json',
          body: {
            instance: deps.audit.instance, config_version: version, pushed_seq: pushed?.seq ?? null, consistent: versions.length <= 1, versions, master_keys_consistent: sealing.size <= 1,
            instances: reports.map((r) => ({
              instance: r.instance, host: r.host, pid: r.pid, config_version: r.configVersion, pushed_seq: r.pushedSeq ?? null, master_key_ids: [...r.keyIds],
              started_at: new Date(r.startedAt).toISOString(), seen_at: new Date(r.seenAt).toISOString(),
            })),
          },
        }
      },
    }),
  ] as const
}
