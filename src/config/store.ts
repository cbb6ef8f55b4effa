import { isIP } from 'node:net'
import { resolve } from 'node:path'
import type { Static } from 'typebox'
import type { FieldPath } from '../schema-kit/field-path.ts'
import type { PostgresConfig, StoreConfig } from '../store/location.ts'
import { durationMs } from '../duration.ts'
import { readCa } from './compile.ts'
import type { STORE_SCHEMA } from './store-schema.ts'

/**
 * The `store` block as the store to open: SQLite in the data folder when there is none, else the
 * PostgreSQL server its URL names. The URL carries no password (a config file is shared and
 * committed), and cleartext is allowed only where nothing crosses a network (loopback, Unix socket).
 */
export function compileStore(
  raw: Static<typeof STORE_SCHEMA> | undefined,
  sqlite: { path: string; fsync: boolean },
  dir: string,
  problem: (at: FieldPath, message: string) => void,
): StoreConfig {
  if (raw === undefined) return { kind: 'sqlite', ...sqlite }
  const target = parsePostgresUrl(raw.url, (m) => problem(['url'], m))
  if (raw.password_file !== undefined && raw.password_env !== undefined) problem(['password_env'], 'give the password one way: password_file or password_env')
  const password = raw.password_file !== undefined ? { file: resolve(dir, raw.password_file) } : raw.password_env !== undefined ? { env: raw.password_env } : undefined
  let tls: PostgresConfig['tls'] = { mode: 'disable' }
  if (raw.tls.mode === 'verify-full') {
    const caPem = raw.tls.ca_file === undefined ? undefined : readCa(resolve(dir, raw.tls.ca_file), (m) => problem(['tls', 'ca_file'], m))
    tls = caPem === undefined ? { mode: 'verify-full' } : { mode: 'verify-full', caPem }
  } else {
    if (raw.tls.ca_file !== undefined) problem(['tls', 'ca_file'], 'has no use with tls.mode disable')
    if (target !== undefined && !isLocal(target.host)) problem(['tls', 'mode'], `disable sends the password and every secret envelope in cleartext: allowed only to a loopback address or a Unix socket, not ${target.host}`)
  }
  const keptReads = { resyncMs: raw.resync_ms, graceMs: durationMs(raw.unavailable_grace) ?? 0 }
  return { kind: 'postgres', ...(target ?? { host: '', port: 0, database: '', user: '' }), password, tls, keptReads }
}

/** The parts of postgres://USER@HOST:PORT/DATABASE (or USER@localhost/DATABASE?host=/socket/folder), or undefined after reporting why not. */
export function parsePostgresUrl(text: string, problem: (message: string) => void): { host: string; port: number; database: string; user: string } | undefined {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    problem('is not a URL: postgres://USER@HOST:PORT/DATABASE')
    return undefined
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') return void problem('must be a postgres:// URL')
  if (url.password !== '') return void problem('must not carry a password: give it with password_file or password_env')
  if (url.hash !== '') return void problem('must not have a fragment')
  const socket = url.searchParams.get('host')
  const unknown = [...url.searchParams.keys()].filter((k) => k !== 'host')
  if (unknown.length > 0) return void problem(`takes no parameter but host (a Unix socket folder); not ${unknown.join(', ')}: TLS is set under store.tls`)
  if (socket !== null && (!socket.startsWith('/') || url.hostname !== 'localhost')) return void problem('host= names a Unix socket folder (an absolute path): postgres://USER@localhost/DATABASE?host=/run/postgresql')
  const user = decodeURIComponent(url.username)
  if (user === '') return void problem('must name the role: postgres://USER@HOST/DATABASE')
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''))
  if (database === '' || database.includes('/')) return void problem('must name one database: postgres://USER@HOST/DATABASE')
  const host = socket ?? url.hostname.replace(/^\[(.*)\]$/, '$1')
  if (host === '') return void problem('must name a host')
  return { host, port: url.port === '' ? 5432 : Number(url.port), database, user }
}

function isLocal(host: string): boolean {
  if (host.startsWith('/')) return true
  if (isIP(host) === 4) return host.startsWith('127.')
  return host === '::1'
}
