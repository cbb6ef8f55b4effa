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
]
