import { keyIdsOf } from '../instance-row.ts'
import type { InstanceReport, InstanceRepo } from '../store.ts'
import type { Row, Sql } from './connect.ts'

/** InstanceRepo on the `instances` table: each method beside its statement. */
export function postgresInstances(sql: Sql): InstanceRepo {
  return {
    report: async (r: InstanceReport) => {
      await sql`INSERT INTO instances (instance, host, pid, config_version, pushed_seq, key_ids, started_at, seen_at)
        VALUES (${r.instance}, ${r.host}, ${r.pid}, ${r.configVersion}, ${r.pushedSeq ?? null}, ${r.keyIds.join(' ')}, ${r.startedAt}, ${r.seenAt})
        ON CONFLICT (instance) DO UPDATE SET host = excluded.host, pid = excluded.pid, config_version = excluded.config_version, pushed_seq = excluded.pushed_seq,
          key_ids = excluded.key_ids, started_at = excluded.started_at, seen_at = excluded.seen_at`
    },
    list: async (seenSince: number) =>
      (await sql`SELECT * FROM instances WHERE seen_at >= ${seenSince} ORDER BY started_at, instance COLLATE "C"`).map(toReport),
    remove: async (instance: string) => (await sql`DELETE FROM instances WHERE instance = ${instance}`).count > 0,
  }
}

function toReport(row: Row): InstanceReport {
  return {
    instance: String(row.instance), host: String(row.host), pid: Number(row.pid), configVersion: String(row.config_version),
    pushedSeq: row.pushed_seq === null ? undefined : Number(row.pushed_seq), keyIds: keyIdsOf(row.key_ids), startedAt: Number(row.started_at), seenAt: Number(row.seen_at),
  }
}
