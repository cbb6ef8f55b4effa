import type { DatabaseSync } from 'node:sqlite'
import { keyIdsOf } from '../instance-row.ts'
import type { InstanceReport, InstanceRepo } from '../store.ts'

/** InstanceRepo on the `instances` table: each method beside its statement. */
export function sqliteInstances(db: DatabaseSync): InstanceRepo {
  const report = db.prepare(`INSERT INTO instances (instance, host, pid, config_version, pushed_seq, key_ids, started_at, seen_at)
    VALUES (:instance, :host, :pid, :version, :pushed, :keys, :started, :seen)
    ON CONFLICT (instance) DO UPDATE SET host = excluded.host, pid = excluded.pid, config_version = excluded.config_version, pushed_seq = excluded.pushed_seq,
      key_ids = excluded.key_ids, started_at = excluded.started_at, seen_at = excluded.seen_at`)
  const list = db.prepare('SELECT * FROM instances WHERE seen_at >= ? ORDER BY started_at, instance')
  const remove = db.prepare('DELETE FROM instances WHERE instance = ?')
  return {
    report: async (r: InstanceReport) => {
      report.run({ instance: r.instance, host: r.host, pid: r.pid, version: r.configVersion, pushed: r.pushedSeq ?? null, keys: r.keyIds.join(' '), started: r.startedAt, seen: r.seenAt })
    },
    list: async (seenSince: number) =>
      list.all(seenSince).map((row) => ({
        instance: String(row.instance), host: String(row.host), pid: Number(row.pid), configVersion: String(row.config_version),
        pushedSeq: row.pushed_seq === null ? undefined : Number(row.pushed_seq), keyIds: keyIdsOf(row.key_ids), startedAt: Number(row.started_at), seenAt: Number(row.seen_at),
      })),
    remove: async (instance: string) => Number(remove.run(instance).changes) > 0,
  }
}
