import { readFileSync } from 'node:fs'
import { OperatorError } from '../errors.ts'

/**
 * Where a Store lives, as plain data: the composition root resolves it once from the config (the
 * password read from its file or environment variable), and the audit writer thread is handed the
 * same value to open its own connection to the same store.
 */
export type StoreLocation = SqliteLocation | PostgresLocation

export interface SqliteLocation {
  readonly kind: 'sqlite'
  /** `<data_dir>/keyvalet.db`; the audit log is `keyvalet-audit.db` beside it. */
  readonly path: string
  /** synchronous=FULL: a commit is on disk, not only in the OS, when it returns. */
  readonly fsync: boolean
}

export interface PostgresLocation {
  readonly kind: 'postgres'
  /** A host name, an IP address, or the folder of a Unix socket (starts with `/`). */
  readonly host: string
  readonly port: number
  readonly database: string
  readonly user: string
  readonly password?: string
  /**
   * verify-full: TLS, the chain checked against `caPem` (or Node's public roots without it) and
   * the host name against the certificate, as libpq's sslmode=verify-full. disable: cleartext,
   * accepted only to a loopback address or a Unix socket (config/store.ts refuses it otherwise).
   */
  readonly tls: { readonly mode: 'verify-full'; readonly caPem?: string } | { readonly mode: 'disable' }
}

/** How an operator sees a location (never the password). */
export function describeLocation(location: StoreLocation): string {
  if (location.kind === 'sqlite') return location.path
  const where = location.host.startsWith('/') ? `${location.host}/.s.PGSQL.${location.port}` : `${location.host}:${location.port}`
  return `postgres://${encodeURIComponent(location.user)}@${where}/${encodeURIComponent(location.database)} (tls ${location.tls.mode})`
}

/** How a serving instance keeps request-path reads on PostgreSQL (store.resync_ms, store.unavailable_grace). */
export interface KeptReads {
  /** How often the change feed proves it still hears every change; kept reads answer for at most three times this without proof. */
  readonly resyncMs: number
  /** How long kept reads still answer while the server cannot be reached. */
  readonly graceMs: number
}

/** A PostgreSQL store as configured: the password is named (a file or an environment variable), read only when opened. */
export interface PostgresConfig extends Omit<PostgresLocation, 'password'> {
  readonly password: { readonly file: string } | { readonly env: string } | undefined
  readonly keptReads: KeptReads
}

export type StoreConfig = SqliteLocation | PostgresConfig

/**
 * The location to open: for PostgreSQL, with the password read from its file (first line, without
 * the line break) or environment variable now, so that a rotated password is picked up at the
 * next start and never sits in the config.
 */
export function locateStore(store: StoreConfig, env: NodeJS.ProcessEnv): StoreLocation {
  if (store.kind === 'sqlite') return store
  const { password, keptReads: _, ...rest } = store
  if (password === undefined) return rest
  if ('env' in password) {
    const value = env[password.env]
    if (value === undefined || value === '') throw new OperatorError(`the environment variable ${password.env} (store.password_env) is not set`, 'set it to the password of the PostgreSQL role in store.url')
    return { ...rest, password: value }
  }
  let text: string
  try {
    text = readFileSync(password.file, 'utf8')
  } catch (err) {
    throw new OperatorError(`cannot read the store password file ${password.file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'check store.password_file and its permissions', { cause: err })
  }
  const value = text.split(/\r?\n/)[0] ?? ''
  if (value === '') throw new OperatorError(`the store password file ${password.file} is empty`, 'put the password on its first line')
  return { ...rest, password: value }
}
