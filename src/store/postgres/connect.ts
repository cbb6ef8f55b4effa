import { checkServerIdentity } from 'node:tls'
import postgres from 'postgres'
import { OperatorError } from '../../errors.ts'
import { describeLocation, type PostgresLocation } from '../location.ts'

/** The driver's handle on the server: a pool of connections. Repos take it (or a transaction of it). */
export type Sql = postgres.Sql
export type Tx = postgres.TransactionSql
export type Row = postgres.Row

/**
 * A connection pool to the location. Every option is given, so nothing comes from the PG*
 * environment variables or ~/.pgpass behind the operator's back. verify-full is TLS with the chain
 * checked (rejectUnauthorized) and the server's name checked against `host` (Node's
 * checkServerIdentity, given explicitly so that no default can turn it off).
 */
export function connect(location: PostgresLocation, opts: { readonly max?: number; readonly applicationName?: string } = {}): Sql {
  const socket = location.host.startsWith('/')
  return postgres({
    ...(socket ? { path: `${location.host}/.s.PGSQL.${location.port}` } : { host: location.host, port: location.port }),
    database: location.database,
    username: location.user,
    password: location.password ?? '',
    ssl: location.tls.mode === 'disable'
      ? false
      : { rejectUnauthorized: true, checkServerIdentity, minVersion: 'TLSv1.2', ...(location.tls.caPem === undefined ? {} : { ca: location.tls.caPem }) },
    max: opts.max ?? 10,
    connect_timeout: 10,
    idle_timeout: 60,
    onnotice: () => {},
    connection: { application_name: opts.applicationName ?? 'keyvalet' },
  })
}

/** A failure to reach or use the server at open, as an operator error naming it (never the password). */
export function unreachable(err: unknown, location: PostgresLocation): OperatorError {
  if (err instanceof OperatorError) return err
  const message = err instanceof Error ? err.message : String(err)
  return new OperatorError(
    `cannot use the PostgreSQL store ${describeLocation(location)}: ${message}`,
    'check store.url, the password (store.password_file or store.password_env), store.tls and that the server is up',
    { cause: err },
  )
}
