/**
 * Every schema change of keyvalet's two SQLite files, in one place: MIGRATIONS[i] takes a file
 * from user_version i to i + 1 (sqlite-file.ts applies them). Append new entries; never edit a
 * released one. A new store operation that needs a column or table adds its entry here.
 */

/** keyvalet.db: sessions, secrets and admin tokens. */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE sessions (
     id TEXT PRIMARY KEY,
     key_hash BLOB NOT NULL UNIQUE,
     agent TEXT NOT NULL,
     user TEXT NOT NULL,
     workspace TEXT NOT NULL,
     task TEXT NOT NULL,
     grants TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     revoked_at INTEGER
   ) STRICT;
   CREATE TABLE secrets (
     name TEXT PRIMARY KEY,
     envelope BLOB NOT NULL,
     key_id TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL
   ) STRICT;`,
  `CREATE TABLE counters (
     key TEXT PRIMARY KEY,
     used INTEGER NOT NULL,
     expires_at INTEGER NOT NULL
   ) STRICT;
   CREATE INDEX counters_expiry ON counters (expires_at);`,
  `CREATE TABLE admin_tokens (
     id TEXT PRIMARY KEY,
     digest BLOB NOT NULL UNIQUE,
     name TEXT NOT NULL,
     role TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     expires_at INTEGER,
     revoked_at INTEGER
   ) STRICT;
   CREATE INDEX sessions_by_creation ON sessions (created_at, id);`,
  'ALTER TABLE sessions ADD COLUMN budget INTEGER;',
  // Requests parked for approval (sqlite/approvals.ts).
  `CREATE TABLE approvals (
     id TEXT PRIMARY KEY,
     request_id TEXT NOT NULL,
     session TEXT NOT NULL,
     agent TEXT NOT NULL,
     user TEXT NOT NULL,
     workspace TEXT NOT NULL,
     task TEXT NOT NULL,
     connector TEXT NOT NULL,
     rule TEXT NOT NULL,
     method TEXT NOT NULL,
     host TEXT NOT NULL,
     path TEXT NOT NULL,
     summary TEXT NOT NULL,
     digest TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     state TEXT NOT NULL,
     decided_at INTEGER,
     approver_id TEXT,
     approver_name TEXT,
     reason TEXT,
     remember_until INTEGER
   ) STRICT;
   CREATE INDEX approvals_pending ON approvals (created_at, id) WHERE state = 'pending';
   CREATE INDEX approvals_remembered ON approvals (session, digest) WHERE remember_until IS NOT NULL;`,
  // What each serving instance says about itself (sqlite/instances.ts).
  `CREATE TABLE instances (
     instance TEXT PRIMARY KEY,
     host TEXT NOT NULL,
     pid INTEGER NOT NULL,
     config_version TEXT NOT NULL,
     started_at INTEGER NOT NULL,
     seen_at INTEGER NOT NULL
   ) STRICT;`,
  // Policies pushed to the fleet (sqlite/pushed-configs.ts, config/push.ts), and the pushed
  // sequence number each instance serves under.
  `CREATE TABLE pushed_configs (
     seq INTEGER PRIMARY KEY,
     text TEXT NOT NULL,
     sha256 TEXT NOT NULL,
     pushed_at INTEGER NOT NULL,
     pushed_by TEXT NOT NULL,
     key_id TEXT NOT NULL,
     mac BLOB NOT NULL
   ) STRICT;
   ALTER TABLE instances ADD COLUMN pushed_seq INTEGER;`,
  // The master keys each instance holds, space-separated key ids (vault/rotation-guard.ts).
  `ALTER TABLE instances ADD COLUMN key_ids TEXT NOT NULL DEFAULT '';`,
]

/**
 * The audit file. The audit log lives in a database of its own so that its constant appends (by
 * the audit writer thread) never disturb readers of sessions and secrets, and so that it can be
 * retained, shipped and backed up on its own terms.
 */
export const AUDIT_MIGRATIONS: readonly string[] = [
  `CREATE TABLE audit (
     seq INTEGER PRIMARY KEY,
     hash TEXT NOT NULL,
     line TEXT NOT NULL
   ) STRICT;
   -- Append-only at the SQL level. This guards against accidents (a stray UPDATE or DELETE), not
   -- against someone with write access to the file, who can drop the triggers: the keyed HMAC chain
   -- (audit/verify.ts) is what detects that.
   CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
     BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;
   CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
     BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;`,
  // The facets an audit query filters on (store.ts AuditFacets), beside each line, indexed. Rows
  // written before are filled from their lines; the chain covers the lines only, so this changes
  // nothing it verifies. The update trigger is lifted for that one statement.
  `ALTER TABLE audit ADD COLUMN time TEXT;
   ALTER TABLE audit ADD COLUMN session TEXT;
   ALTER TABLE audit ADD COLUMN agent TEXT;
   ALTER TABLE audit ADD COLUMN user TEXT;
   ALTER TABLE audit ADD COLUMN workspace TEXT;
   ALTER TABLE audit ADD COLUMN task TEXT;
   ALTER TABLE audit ADD COLUMN connector TEXT;
   ALTER TABLE audit ADD COLUMN decision TEXT;
   ALTER TABLE audit ADD COLUMN error TEXT;
   DROP TRIGGER audit_no_update;
   UPDATE audit SET
     time = json_extract(line, '$.time'), session = json_extract(line, '$.session'), agent = json_extract(line, '$.agent'),
     user = json_extract(line, '$.user'), workspace = json_extract(line, '$.workspace'), task = json_extract(line, '$.task'),
     connector = json_extract(line, '$.connector'), decision = json_extract(line, '$.decision'), error = json_extract(line, '$.error')
   WHERE json_valid(line) AND json_type(line) = 'object';
   CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
     BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;
   CREATE INDEX audit_by_time ON audit (time);
   CREATE INDEX audit_by_session ON audit (session, seq) WHERE session IS NOT NULL;
   CREATE INDEX audit_by_agent ON audit (agent, seq) WHERE agent IS NOT NULL;
   CREATE INDEX audit_by_user ON audit (user, seq) WHERE user IS NOT NULL;
   CREATE INDEX audit_by_workspace ON audit (workspace, seq) WHERE workspace IS NOT NULL;
   CREATE INDEX audit_by_task ON audit (task, seq) WHERE task IS NOT NULL;
   CREATE INDEX audit_by_connector ON audit (connector, seq) WHERE connector IS NOT NULL;
   CREATE INDEX audit_by_error ON audit (error, seq) WHERE error IS NOT NULL;`,
  // A chain per keyvalet instance (store.ts AuditRow): the rows written before form the chain ''
  // and keep their place in it (chain_seq = seq); the store numbers new rows itself (seq is the
  // rowid). The update trigger is lifted for that one statement; the lines do not change.
  `ALTER TABLE audit ADD COLUMN instance TEXT NOT NULL DEFAULT '';
   ALTER TABLE audit ADD COLUMN chain_seq INTEGER NOT NULL DEFAULT 0;
   DROP TRIGGER audit_no_update;
   UPDATE audit SET chain_seq = seq;
   CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
     BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;
   CREATE UNIQUE INDEX audit_by_chain ON audit (instance, chain_seq);`,
  // Which listener a record is about and a stream's phase, beside each line, so that a summary
  // counts requests only (AuditRepo.summary); filled from the lines of the rows with facets.
  `ALTER TABLE audit ADD COLUMN mode TEXT;
   ALTER TABLE audit ADD COLUMN phase TEXT;
   DROP TRIGGER audit_no_update;
   UPDATE audit SET mode = json_extract(line, '$.mode'), phase = json_extract(line, '$.phase') WHERE time IS NOT NULL;
   CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
     BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;`,
  // Facets indexed in arrears (sqlite/audit-facets.ts): a request's commit writes its row with its
  // facet columns and the one index chainLast needs (audit_by_chain); the facet indexes live on
  // `audit_facets`, which a catch-up fills from committed rows in large batches. It is derived
  // data outside the hash chain (the lines are untouched, `audit verify` is unchanged): it holds a
  // copy of the facet columns of every row of `audit` up to its highest seq, and nothing else.
  // The rows there now are copied in; the old indexes go.
  `CREATE TABLE audit_facets (
     seq INTEGER PRIMARY KEY,
     time TEXT,
     session TEXT,
     agent TEXT,
     user TEXT,
     workspace TEXT,
     task TEXT,
     connector TEXT,
     decision TEXT,
     error TEXT,
     mode TEXT,
     phase TEXT
   ) STRICT;
   INSERT INTO audit_facets (seq, time, session, agent, user, workspace, task, connector, decision, error, mode, phase)
     SELECT seq, time, session, agent, user, workspace, task, connector, decision, error, mode, phase FROM audit ORDER BY seq;
   CREATE TRIGGER audit_facets_no_update BEFORE UPDATE ON audit_facets
     BEGIN SELECT RAISE(ABORT, 'audit facets are append-only'); END;
   CREATE TRIGGER audit_facets_no_delete BEFORE DELETE ON audit_facets
     BEGIN SELECT RAISE(ABORT, 'audit facets are append-only'); END;
   DROP INDEX audit_by_time;
   DROP INDEX audit_by_session;
   DROP INDEX audit_by_agent;
   DROP INDEX audit_by_user;
   DROP INDEX audit_by_workspace;
   DROP INDEX audit_by_task;
   DROP INDEX audit_by_connector;
   DROP INDEX audit_by_error;
   CREATE INDEX audit_facets_by_time ON audit_facets (time);
   CREATE INDEX audit_facets_by_session ON audit_facets (session, seq) WHERE session IS NOT NULL;
   CREATE INDEX audit_facets_by_agent ON audit_facets (agent, seq) WHERE agent IS NOT NULL;
   CREATE INDEX audit_facets_by_user ON audit_facets (user, seq) WHERE user IS NOT NULL;
   CREATE INDEX audit_facets_by_workspace ON audit_facets (workspace, seq) WHERE workspace IS NOT NULL;
   CREATE INDEX audit_facets_by_task ON audit_facets (task, seq) WHERE task IS NOT NULL;
   CREATE INDEX audit_facets_by_connector ON audit_facets (connector, seq) WHERE connector IS NOT NULL;
   CREATE INDEX audit_facets_by_error ON audit_facets (error, seq) WHERE error IS NOT NULL;`,
]
