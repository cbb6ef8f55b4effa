import type { DatabaseSync } from 'node:sqlite'
import type { PushedConfig, PushedConfigRepo } from '../pushed-config-repo.ts'
import { blob, type Row } from './fresh-reads.ts'

/** PushedConfigRepo on the `pushed_configs` table: each method beside its statement. */
export function sqlitePushedConfigs(db: DatabaseSync): PushedConfigRepo {
  const highest = db.prepare('SELECT COALESCE(MAX(seq), 0) AS seq FROM pushed_configs')
  const insert = db.prepare(`INSERT INTO pushed_configs (seq, text, sha256, pushed_at, pushed_by, key_id, mac)
    VALUES (:seq, :text, :sha256, :pushedAt, :pushedBy, :keyId, :mac)`)
  const list = db.prepare('SELECT * FROM pushed_configs ORDER BY seq DESC LIMIT ?')
  const remac = db.prepare('UPDATE pushed_configs SET key_id = ?, mac = ? WHERE seq = ? AND mac = ?')
  return {
    push: async (make) => {
      // One write transaction: the number read is still the highest when the row goes in.
      db.exec('BEGIN IMMEDIATE')
      try {
        const row = make(Number(highest.get()?.seq) + 1)
        insert.run({ seq: row.seq, text: row.text, sha256: row.sha256, pushedAt: row.pushedAt, pushedBy: row.pushedBy, keyId: row.keyId, mac: row.mac })
        db.exec('COMMIT')
        return row
      } catch (err) {
        if (db.isTransaction) db.exec('ROLLBACK')
        throw err
      }
    },
    list: async (limit) => list.all(limit).map(toPushed),
    latestSeq: async () => Number(highest.get()?.seq),
    remac: async (seq, expected, keyId, mac) => Number(remac.run(keyId, mac, seq, expected).changes) > 0,
  }
}

function toPushed(row: Row): PushedConfig {
  return {
    seq: Number(row.seq), text: String(row.text), sha256: String(row.sha256), pushedAt: Number(row.pushed_at),
    pushedBy: String(row.pushed_by), keyId: String(row.key_id), mac: blob(row.mac),
  }
}
