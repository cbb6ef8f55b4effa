import { OperatorError } from '../../errors.ts'
import type { Sql, Tx } from './connect.ts'

/**
 * Every schema change of the PostgreSQL store, in one place: MIGRATIONS[i] takes the database from
 * version i to i + 1 (kept in keyvalet_schema). Append new entries; never edit a released one.
 * A new repo adds its tables here and their runtime privileges to RUNTIME_GRANTS.
 */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE sessions (
     id TEXT PRIMARY KEY,
     key_hash BYTEA NOT NULL UNIQUE,
     agent TEXT NOT NULL,
     "user" TEXT NOT NULL,
     workspace TEXT NOT NULL,
     task TEXT NOT NULL,
     grants TEXT NOT NULL,
     created_at BIGINT NOT NULL,
     expires_at BIGINT NOT NULL,
     revoked_at BIGINT
   );
   CREATE TABLE secrets (
     name TEXT PRIMARY KEY,
     envelope BYTEA NOT NULL,
     key_id TEXT NOT NULL,
     created_at BIGINT NOT NULL,
     updated_at BIGINT NOT NULL
   );
   CREATE TABLE audit (
     seq BIGINT PRIMARY KEY,
     hash TEXT NOT NULL,
     line TEXT NOT NULL
   );
   -- Append-only at the SQL level, for every role but a superuser who drops the triggers: the keyed
   -- HMAC chain (audit/verify.ts) is what detects that. The runtime role has no UPDATE, DELETE or
   -- TRUNCATE on audit in the first place (RUNTIME_GRANTS).
   CREATE FUNCTION keyvalet_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS
     $$ BEGIN RAISE EXCEPTION 'audit rows are append-only'; END $$;
   CREATE TRIGGER audit_no_update_or_delete BEFORE UPDATE OR DELETE ON audit
     FOR EACH ROW EXECUTE FUNCTION keyvalet_audit_append_only();
   CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
     FOR EACH STATEMENT EXECUTE FUNCTION keyvalet_audit_append_only();`,
  // Budgets and rate limits (postgres/counters.ts), admin tokens (postgres/admin-tokens.ts), and
  // sessions paged in (created_at, id) order, ids compared byte by byte as SQLite does.
  `CREATE TABLE counters (
     key TEXT PRIMARY KEY,
     used BIGINT NOT NULL,
     expires_at BIGINT NOT NULL
   );
   CREATE INDEX counters_expiry ON counters (expires_at);
   CREATE TABLE admin_tokens (
     id TEXT PRIMARY KEY,
     digest BYTEA NOT NULL UNIQUE,
     name TEXT NOT NULL,
     role TEXT NOT NULL,
     created_at BIGINT NOT NULL,
     expires_at BIGINT,
     revoked_at BIGINT
   );
   CREATE INDEX sessions_by_creation ON sessions (created_at, id COLLATE "C");`,
  // The facets an audit query filters on (store.ts AuditFacets), beside each line, indexed. Rows
  // written before are filled from their lines (a line that is not a JSON object gets none); the
  // chain covers the lines only, so this changes nothing it verifies. The owner lifts the
  // append-only trigger for that one statement, inside this migration's transaction. Times
  // compare byte by byte (COLLATE "C"), as ISO 8601 strings sort.
  `ALTER TABLE audit ADD COLUMN time TEXT COLLATE "C", ADD COLUMN session TEXT, ADD COLUMN agent TEXT, ADD COLUMN "user" TEXT,
     ADD COLUMN workspace TEXT, ADD COLUMN task TEXT, ADD COLUMN connector TEXT, ADD COLUMN decision TEXT, ADD COLUMN error TEXT;
   CREATE FUNCTION pg_temp.keyvalet_json_object(line TEXT) RETURNS jsonb LANGUAGE plpgsql AS
     $$ BEGIN RETURN CASE WHEN jsonb_typeof(line::jsonb) = 'object' THEN line::jsonb END; EXCEPTION WHEN others THEN RETURN NULL; END $$;
   ALTER TABLE audit DISABLE TRIGGER audit_no_update_or_delete;
   UPDATE audit SET time = j->>'time', session = j->>'session', agent = j->>'agent', "user" = j->>'user', workspace = j->>'workspace',
       task = j->>'task', connector = j->>'connector', decision = j->>'decision', error = j->>'error'
     FROM (SELECT seq AS s, pg_temp.keyvalet_json_object(line) AS j FROM audit) AS parsed
     WHERE audit.seq = parsed.s AND parsed.j IS NOT NULL;
   ALTER TABLE audit ENABLE TRIGGER audit_no_update_or_delete;
   CREATE INDEX audit_by_time ON audit (time);
   CREATE INDEX audit_by_session ON audit (session, seq) WHERE session IS NOT NULL;
   CREATE INDEX audit_by_agent ON audit (agent, seq) WHERE agent IS NOT NULL;
   CREATE INDEX audit_by_user ON audit ("user", seq) WHERE "user" IS NOT NULL;
   CREATE INDEX audit_by_workspace ON audit (workspace, seq) WHERE workspace IS NOT NULL;
   CREATE INDEX audit_by_task ON audit (task, seq) WHERE task IS NOT NULL;
   CREATE INDEX audit_by_connector ON audit (connector, seq) WHERE connector IS NOT NULL;
   CREATE INDEX audit_by_error ON audit (error, seq) WHERE error IS NOT NULL;`,
  // The request budget a session was created with (src/budgets/), none for those before.
  'ALTER TABLE sessions ADD COLUMN budget BIGINT;',
  // A chain per keyvalet instance (store.ts AuditRow): the rows written before form the chain ''
  // and keep their place in it (chain_seq = seq). New rows are numbered by the identity column
  // (no lock: each instance appends to its own chain, and the unique index refuses a fork).
  // Instances of a keyvalet from before this migration must be stopped before it runs: they
  // number rows themselves, under a lock the new ones do not take.
  `ALTER TABLE audit ADD COLUMN instance TEXT COLLATE "C" NOT NULL DEFAULT '', ADD COLUMN chain_seq BIGINT;
   ALTER TABLE audit DISABLE TRIGGER audit_no_update_or_delete;
   UPDATE audit SET chain_seq = seq;
   ALTER TABLE audit ENABLE TRIGGER audit_no_update_or_delete;
   ALTER TABLE audit ALTER COLUMN chain_seq SET NOT NULL;
   CREATE UNIQUE INDEX audit_by_chain ON audit (instance, chain_seq);
   ALTER TABLE audit ALTER COLUMN seq ADD GENERATED BY DEFAULT AS IDENTITY;
   SELECT setval(pg_get_serial_sequence('audit', 'seq'), COALESCE(MAX(seq), 0) + 1, false) FROM audit;`,
  // Requests parked for approval (postgres/approvals.ts).
  `CREATE TABLE approvals (
     id TEXT PRIMARY KEY,
     request_id TEXT NOT NULL,
     session TEXT NOT NULL,
     agent TEXT NOT NULL,
     "user" TEXT NOT NULL,
     workspace TEXT NOT NULL,
     task TEXT NOT NULL,
     connector TEXT NOT NULL,
     rule TEXT NOT NULL,
     method TEXT NOT NULL,
     host TEXT NOT NULL,
     path TEXT NOT NULL,
     summary TEXT NOT NULL,
     digest TEXT NOT NULL,
     created_at BIGINT NOT NULL,
     expires_at BIGINT NOT NULL,
     state TEXT NOT NULL,
     decided_at BIGINT,
     approver_id TEXT,
     approver_name TEXT,
     reason TEXT,
     remember_until BIGINT
   );
   CREATE INDEX approvals_pending ON approvals (created_at, id COLLATE "C") WHERE state = 'pending';
   CREATE INDEX approvals_remembered ON approvals (session, digest) WHERE remember_until IS NOT NULL;`,
  // Change notifications (postgres/change-feed.ts): every insert, update or delete of a session,
  // secret or admin token NOTIFYs keyvalet_changes with what changed (kind:id, never a value, key
  // hash or digest), inside the writing transaction, so whoever writes (an instance, the CLI, db
  // copy, an operator's SQL) is heard, and only once it committed. NOTIFY needs no privilege.
  `CREATE FUNCTION keyvalet_notify_change() RETURNS trigger LANGUAGE plpgsql AS
     $$ BEGIN
       PERFORM pg_notify('keyvalet_changes', CASE WHEN TG_OP = 'TRUNCATE' THEN 'all:' || TG_TABLE_NAME
         ELSE TG_ARGV[0] || ':' || (to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END) ->> TG_ARGV[1]) END);
       RETURN NULL;
     END $$;
   CREATE TRIGGER sessions_notify AFTER INSERT OR UPDATE OR DELETE ON sessions
     FOR EACH ROW EXECUTE FUNCTION keyvalet_notify_change('session', 'id');
   CREATE TRIGGER secrets_notify AFTER INSERT OR UPDATE OR DELETE ON secrets
     FOR EACH ROW EXECUTE FUNCTION keyvalet_notify_change('secret', 'name');
   CREATE TRIGGER admin_tokens_notify AFTER INSERT OR UPDATE OR DELETE ON admin_tokens
     FOR EACH ROW EXECUTE FUNCTION keyvalet_notify_change('admin_token', 'id');
   CREATE TRIGGER sessions_notify_truncate AFTER TRUNCATE ON sessions FOR EACH STATEMENT EXECUTE FUNCTION keyvalet_notify_change();
   CREATE TRIGGER secrets_notify_truncate AFTER TRUNCATE ON secrets FOR EACH STATEMENT EXECUTE FUNCTION keyvalet_notify_change();
   CREATE TRIGGER admin_tokens_notify_truncate AFTER TRUNCATE ON admin_tokens FOR EACH STATEMENT EXECUTE FUNCTION keyvalet_notify_change();`,
  // Which listener a record is about and a stream's phase, beside each line, so that a summary
  // counts requests only (AuditRepo.summary); filled from the lines of the rows with facets.
  `ALTER TABLE audit ADD COLUMN mode TEXT, ADD COLUMN phase TEXT;
   ALTER TABLE audit DISABLE TRIGGER audit_no_update_or_delete;
   UPDATE audit SET mode = line::jsonb->>'mode', phase = line::jsonb->>'phase' WHERE time IS NOT NULL;
   ALTER TABLE audit ENABLE TRIGGER audit_no_update_or_delete;`,
  // What each serving instance says about itself (postgres/instances.ts).
  `CREATE TABLE instances (
     instance TEXT PRIMARY KEY,
     host TEXT NOT NULL,
     pid INTEGER NOT NULL,
     config_version TEXT NOT NULL,
     started_at BIGINT NOT NULL,
     seen_at BIGINT NOT NULL
   );`,
  // An approval's state change NOTIFYs keyvalet_changes with approval:ID, so that the instance
  // whose request waits for it wakes at once (approvals/approvals.ts) whoever decided it.
  `CREATE TRIGGER approvals_notify AFTER UPDATE OF state ON approvals
     FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION keyvalet_notify_change('approval', 'id');`,
  // Policies pushed to the fleet (postgres/pushed-configs.ts, config/push.ts): a new row NOTIFYs
  // keyvalet_changes with config:SEQ, so every instance following pushes reads it at once; and
  // the pushed sequence number each instance serves under.
  `CREATE TABLE pushed_configs (
     seq BIGINT PRIMARY KEY,
     text TEXT NOT NULL,
     sha256 TEXT NOT NULL,
     pushed_at BIGINT NOT NULL,
     pushed_by TEXT NOT NULL,
     key_id TEXT NOT NULL,
     mac BYTEA NOT NULL
   );
   CREATE TRIGGER pushed_configs_notify AFTER INSERT ON pushed_configs
     FOR EACH ROW EXECUTE FUNCTION keyvalet_notify_change('config', 'seq');
   ALTER TABLE instances ADD COLUMN pushed_seq BIGINT;`,
  // The master keys each instance holds, space-separated key ids (vault/rotation-guard.ts).
  `ALTER TABLE instances ADD COLUMN key_ids TEXT NOT NULL DEFAULT '';`,
]

/** What the runtime role may do, table by table: no DDL, and the audit log only read and appended. */
export const RUNTIME_GRANTS: readonly { readonly table: string; readonly privileges: string }[] = [
  { table: 'keyvalet_schema', privileges: 'SELECT' },
  { table: 'sessions', privileges: 'SELECT, INSERT, UPDATE, DELETE' },
  { table: 'secrets', privileges: 'SELECT, INSERT, UPDATE, DELETE' },
  { table: 'audit', privileges: 'SELECT, INSERT' },
  { table: 'counters', privileges: 'SELECT, INSERT, UPDATE, DELETE' },
  { table: 'admin_tokens', privileges: 'SELECT, INSERT, UPDATE' },
  { table: 'approvals', privileges: 'SELECT, INSERT, UPDATE' },
  { table: 'instances', privileges: 'SELECT, INSERT, UPDATE, DELETE' },
  { table: 'pushed_configs', privileges: 'SELECT, INSERT, UPDATE' },
]

/** keyvalet's own key for pg_advisory_xact_lock ("keyvalet" in ASCII): held while migrating. */
const MIGRATION_LOCK = 0x6b657976616c6574n

export interface SchemaStatus {
  readonly version: number
  readonly latest: number
  readonly applied: readonly { readonly version: number; readonly appliedAt: number }[]
}

export async function schemaStatus(sql: Sql | Tx): Promise<SchemaStatus> {
  const [exists] = await sql`SELECT to_regclass('keyvalet_schema') IS NOT NULL AS present`
  if (exists?.present !== true) return { version: 0, latest: MIGRATIONS.length, applied: [] }
  const rows = await sql`SELECT version, applied_at FROM keyvalet_schema ORDER BY version`
  const applied = rows.map((r) => ({ version: Number(r.version), appliedAt: Number(r.applied_at) }))
  return { version: applied.at(-1)?.version ?? 0, latest: MIGRATIONS.length, applied }
}

/**
 * Brings the database to the latest version, once, whichever instance gets there first: the
 * pending migrations run in one transaction under an advisory lock, and the version is read again
 * once it is held, so an instance that waited finds the work done. When the schema is current this
 * reads one table and takes no lock (the runtime role, which may not create tables, gets here).
 * Returns the version found before.
 */
export async function migrate(sql: Sql, opts: { readonly grantTo?: string } = {}): Promise<number> {
  const before = await schemaStatus(sql)
  refuseNewer(before)
  if (before.version === MIGRATIONS.length && opts.grantTo === undefined) return before.version
  return sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK.toString()}::bigint)`
    await tx`CREATE TABLE IF NOT EXISTS keyvalet_schema (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`
    const now = await schemaStatus(tx)
    refuseNewer(now)
    for (let v = now.version; v < MIGRATIONS.length; v++) {
      await tx.unsafe(MIGRATIONS[v] as string)
      await tx`INSERT INTO keyvalet_schema (version, applied_at) VALUES (${v + 1}, ${Date.now()})`
    }
    if (opts.grantTo !== undefined) {
      for (const { table, privileges } of RUNTIME_GRANTS) await tx.unsafe(`GRANT ${privileges} ON ${table} TO ${quoteIdentifier(opts.grantTo)}`)
    }
    return now.version
  }).catch((err: unknown) => {
    if (isPermissionDenied(err)) {
      throw new OperatorError(
        `the store's schema is at version ${before.version}, this keyvalet needs ${MIGRATIONS.length}, and this role may not apply migrations (${(err as Error).message})`,
        'run keyvalet db migrate with the role that owns the database (docs/deploy.md, "PostgreSQL")',
        { cause: err },
      )
    }
    throw err
  })
}

function refuseNewer(status: SchemaStatus): void {
  if (status.version > MIGRATIONS.length) {
    throw new OperatorError(`the store's schema has version ${status.version}, newer than this keyvalet understands (${MIGRATIONS.length})`, 'upgrade keyvalet, or point it at another database')
  }
}

function isPermissionDenied(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === '42501'
}

function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}
