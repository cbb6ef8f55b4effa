import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import type { Config } from '../../config/load.ts'
import { compileStore } from '../../config/store.ts'
import { OperatorError } from '../../errors.ts'
import { copyStore } from '../../store/copy.ts'
import { describeLocation, locateStore, type StoreConfig, type StoreLocation } from '../../store/location.ts'
import { openStore } from '../../store/open.ts'
import { connect, unreachable } from '../../store/postgres/connect.ts'
import { MIGRATIONS, migrate, schemaStatus } from '../../store/postgres/migrations.ts'
import { SCHEMA_VERSION, SqliteStore } from '../../store/sqlite-store.ts'
import type { Io } from '../command.ts'
import { write } from '../args.ts'

/** The options of db migrate, status and copy that name a PostgreSQL role or server other than the config's. */
export const STORE_OPTIONS = {
  user: { type: 'string' },
  'password-file': { type: 'string' },
  'password-env': { type: 'string' },
  'grant-to': { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string' },
  'ca-file': { type: 'string' },
  'tls-mode': { type: 'string' },
} as const

export type StoreValues = { readonly [K in keyof typeof STORE_OPTIONS]?: string | undefined }

/** `db migrate`: brings the configured store to the latest schema, as --user when given, and grants the runtime role its privileges. */
export async function migrateStore(config: Config, values: StoreValues, io: Io): Promise<number> {
  const location = locateStore(asRole(config.store, values, io.cwd), io.env)
  if (location.kind === 'sqlite') {
    await SqliteStore.open(location.path).close()
    write(io.stdout, `${location.path}: schema version ${SCHEMA_VERSION} (SQLite files are migrated whenever keyvalet opens them)`)
    return 0
  }
  const sql = connect(location, { max: 1 })
  try {
    const before = await migrate(sql, values['grant-to'] === undefined ? {} : { grantTo: values['grant-to'] })
    write(io.stdout, before === MIGRATIONS.length ? `${describeLocation(location)}: schema version ${before}, up to date` : `${describeLocation(location)}: migrated from schema version ${before} to ${MIGRATIONS.length}`)
    if (values['grant-to'] !== undefined) write(io.stdout, `granted the runtime privileges to ${values['grant-to']}`)
    return 0
  } catch (err) {
    throw unreachable(err, location)
  } finally {
    await sql.end({ timeout: 5 })
  }
}

/** `db status`: the schema version of the configured store and what is pending; 0 when up to date, 1 otherwise. */
export async function storeStatus(config: Config, values: StoreValues, io: Io): Promise<number> {
  const location = locateStore(asRole(config.store, values, io.cwd), io.env)
  if (location.kind === 'sqlite') {
    write(io.stdout, `${location.path}: SQLite, migrated whenever keyvalet opens it (this keyvalet: schema version ${SCHEMA_VERSION})`)
    return 0
  }
  const sql = connect(location, { max: 1 })
  try {
    const status = await schemaStatus(sql)
    write(io.stdout, `${describeLocation(location)}: schema version ${status.version} of ${status.latest}`)
    for (const a of status.applied) write(io.stdout, `  applied ${a.version} at ${new Date(a.appliedAt).toISOString()}`)
    if (status.version > status.latest) write(io.stdout, 'NEWER than this keyvalet: upgrade keyvalet')
    else if (status.version < status.latest) write(io.stdout, `pending: ${status.latest - status.version} migration(s): run keyvalet db migrate`)
    return status.version === status.latest ? 0 : 1
  } catch (err) {
    throw unreachable(err, location)
  } finally {
    await sql.end({ timeout: 5 })
  }
}

/** `db copy --from sqlite:PATH [--to postgres://…]`: moves an installation into an empty store (the config's, without --to). */
export async function copyInstallation(config: Config, values: StoreValues, io: Io): Promise<number> {
  const from = values.from
  if (from === undefined || !from.startsWith('sqlite:')) throw new OperatorError('db copy needs --from sqlite:PATH', 'PATH is the keyvalet.db of the installation to move (its audit file is beside it)')
  const sourcePath = resolve(io.cwd, from.slice('sqlite:'.length))
  if (!existsSync(sourcePath)) throw new OperatorError(`there is no database at ${sourcePath}`, 'give the keyvalet.db of the installation to move')
  const target: StoreLocation = locateStore(values.to === undefined ? asRole(config.store, values, io.cwd) : destination(values, io.cwd), io.env)
  if (target.kind === 'sqlite' && resolve(target.path) === sourcePath) throw new OperatorError('the source and the destination are the same database', 'give --to postgres://…, or a config whose store is elsewhere')
  const source = SqliteStore.open(sourcePath)
  try {
    const destinationStore = await openStore(target)
    try {
      const counts = await copyStore(source, destinationStore)
      write(io.stdout, `copied ${counts.secrets} secrets, ${counts.sessions} sessions, ${counts.adminTokens} admin tokens, ${counts.pushedConfigs} pushed policies and ${counts.auditRecords} audit records from ${sourcePath} to ${describeLocation(target)}`)
      write(io.stdout, 'check it with keyvalet audit verify against the new store, with the same master key')
      return 0
    } finally {
      await destinationStore.close()
    }
  } finally {
    await source.close()
  }
}

/** The configured store as --user with the password of --password-file or --password-env, when given. */
function asRole(store: StoreConfig, values: StoreValues, cwd: string): StoreConfig {
  const password = passwordOption(values, cwd)
  if (values.user === undefined && password === undefined) return store
  if (store.kind !== 'postgres') throw new OperatorError('--user and the password options apply to a PostgreSQL store', 'set store.url in the config, or leave them out')
  return { ...store, user: values.user ?? store.user, password: password ?? store.password }
}

function passwordOption(values: StoreValues, cwd: string): PostgresLocationPassword | undefined {
  if (values['password-file'] !== undefined && values['password-env'] !== undefined) throw new OperatorError('give the password one way: --password-file or --password-env')
  if (values['password-file'] !== undefined) return { file: resolve(cwd, values['password-file']) }
  if (values['password-env'] !== undefined) return { env: values['password-env'] }
  return undefined
}

type PostgresLocationPassword = { readonly file: string } | { readonly env: string }

/** --to postgres://… with the password, CA and TLS options, checked as the config's store block is. */
function destination(values: StoreValues, cwd: string): StoreConfig {
  const problems: string[] = []
  const mode = values['tls-mode'] ?? 'verify-full'
  if (mode !== 'verify-full' && mode !== 'disable') throw new OperatorError(`--tls-mode ${mode} is not verify-full or disable`)
  const store = compileStore(
    {
      url: values.to ?? '',
      ...(values['password-file'] === undefined ? {} : { password_file: values['password-file'] }),
      ...(values['password-env'] === undefined ? {} : { password_env: values['password-env'] }),
      tls: { mode, ...(values['ca-file'] === undefined ? {} : { ca_file: values['ca-file'] }) },
      // A copy serves no request: it keeps no reads.
      resync_ms: 1000,
      unavailable_grace: '0s',
    },
    { path: '', fsync: false },
    cwd,
    (at, message) => void problems.push(`${at.join('.')}: ${message}`),
  )
  if (problems.length > 0) throw new OperatorError(`--to: ${problems.join('; ')}`, 'e.g. --to postgres://keyvalet@db.internal:5432/keyvalet --password-env PGPASSWORD --ca-file ca.pem')
  return store
}
