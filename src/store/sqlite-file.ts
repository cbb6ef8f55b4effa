import { randomBytes } from 'node:crypto'
import { closeSync, existsSync, linkSync, mkdirSync, openSync, unlinkSync } from 'node:fs'
import { dirname } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { OperatorError } from '../errors.ts'

/**
 * Opens (creating if needed) one SQLite database file of the store in WAL mode and migrates it:
 * `migrations[i]` takes it from user_version i to i + 1.
 *
 * Contract: nothing in keyvalet opens or closes a descriptor on a database file except SQLite.
 * POSIX locks belong to the process and the file: closing ANY descriptor on it drops every lock
 * the process holds there, including those of SQLite connections open in other threads. Without
 * its shared lock, the last outside reader to close (an operator's `sqlite3`) believes it is the
 * only user, checkpoints and deletes the -wal file that keyvalet goes on writing into.
 */
export function openDatabaseFile(path: string, fsync: boolean, migrations: readonly string[]): DatabaseSync {
  if (path !== ':memory:') {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
    createOwnerOnly(path)
  }
  let db: DatabaseSync
  try {
    db = new DatabaseSync(path)
  } catch (err) {
    throw new OperatorError(`cannot open the database ${path}`, 'check the path and its permissions', { cause: err })
  }
  try {
    db.exec('PRAGMA busy_timeout = 5000')
    db.exec('PRAGMA journal_mode = WAL')
    db.exec(`PRAGMA synchronous = ${fsync ? 'FULL' : 'NORMAL'}`)
    db.exec('PRAGMA foreign_keys = ON')
    migrate(db, path, migrations)
    return db
  } catch (err) {
    db.close()
    throw asDamaged(err, path)
  }
}

/** What to do about a damaged database file, for every message that reports one. */
export const DAMAGED_HINT = 'stop every keyvalet using it and keep a copy of the damaged file with its -wal; restore it from your last backup, then run keyvalet db check (docs/deploy.md, "A damaged database")'

/**
 * SQLite's "file is not a database" and "database disk image is malformed" as an operator error
 * naming the file; any other error unchanged.
 */
export function asDamaged(err: unknown, path: string): unknown {
  const code = primaryCode(err)
  if (code !== SQLITE_CORRUPT && code !== SQLITE_NOTADB) return err
  return new OperatorError(`the database ${path} is damaged (${(err as Error).message})`, DAMAGED_HINT, { cause: err })
}

/** The repo with SQLite's corruption errors turned into operator errors that name the damaged file. */
export function reportingDamage<T extends object>(repo: T, db: DatabaseSync): T {
  const path = db.location() ?? ':memory:'
  return eachMethod(repo, (method) => async (...args) => {
    try {
      return await method(...args)
    } catch (err) {
      throw asDamaged(err, path)
    }
  })
}

type RepoMethod = (...args: unknown[]) => Promise<unknown>

/** The repo with each of its (async) methods replaced by `wrap` of it. */
function eachMethod<T extends object>(repo: T, wrap: (method: RepoMethod) => RepoMethod): T {
  const wrapped: Record<string, unknown> = {}
  for (const [name, method] of Object.entries(repo) as [string, RepoMethod][]) wrapped[name] = wrap(method)
  return wrapped as T
}

/** SQLite's primary result code of an error node:sqlite threw (its extended code's low byte); undefined for any other error. */
export function primaryCode(err: unknown): number | undefined {
  const code = typeof err === 'object' && err !== null ? (err as { errcode?: unknown }).errcode : undefined
  return typeof code === 'number' ? code & 0xff : undefined
}

const SQLITE_CORRUPT = 11
const SQLITE_NOTADB = 26
export const SQLITE_BUSY = 5
export const SQLITE_READONLY = 8

/** Pauses between tries while another connection holds the write lock: as SQLite's own busy handler, up to the same 5 s. */
const BUSY_PAUSES_MS = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100]
const BUSY_BUDGET_MS = 5000

/**
 * The repo of a connection opened with busy_timeout 0: a call that finds another connection
 * holding the write lock (SQLITE_BUSY) is tried again after a pause, asynchronously, for as long
 * as busy_timeout would have waited. busy_timeout's wait sleeps the calling thread; this one leaves
 * the event loop running (the audit engine on the proxy's thread). Every method must be safe to
 * call again after SQLITE_BUSY (a transaction that failed so was rolled back whole).
 */
export function yieldingWhenBusy<T extends object>(repo: T): T {
  return eachMethod(repo, (method) => async (...args) => {
    for (let tries = 0, waited = 0; ; tries++) {
      try {
        return await method(...args)
      } catch (err) {
        if (primaryCode(err) !== SQLITE_BUSY || waited >= BUSY_BUDGET_MS) throw err
        const pause = BUSY_PAUSES_MS[Math.min(tries, BUSY_PAUSES_MS.length - 1)] as number
        await new Promise((resolve) => setTimeout(resolve, pause))
        waited += pause
      }
    }
  })
}

/**
 * Creates `path` empty and owner-only (0600) unless it exists, so that the -wal and -shm files
 * SQLite makes beside it, which take its mode, are owner-only too. The empty file is made under a
 * fresh temporary name and hard-linked into place: the link fails if `path` exists, so an existing
 * database is never replaced, and no descriptor is ever opened on `path` itself (see above).
 */
function createOwnerOnly(path: string): void {
  if (existsSync(path)) return
  const temporary = `${path}.${randomBytes(8).toString('hex')}.new`
  try {
    closeSync(openSync(temporary, 'wx', 0o600))
    try {
      linkSync(temporary, path)
    } finally {
      unlinkSync(temporary)
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return // another process created it first
    throw new OperatorError(
      `cannot create the database ${path}: ${(err as Error).message}`,
      `check the folder's permissions; on a file system without hard links, create the file yourself, empty and owner-only (install -m 600 /dev/null ${path})`,
      { cause: err },
    )
  }
}

function migrate(db: DatabaseSync, path: string, migrations: readonly string[]): void {
  db.exec('BEGIN IMMEDIATE') // one process migrates; the others wait, then see the new version
  try {
    const version = Number(db.prepare('PRAGMA user_version').get()?.user_version ?? 0)
    if (version > migrations.length) {
      throw new OperatorError(
        `the database ${path} has schema version ${version}, newer than this keyvalet understands (${migrations.length})`,
        'upgrade keyvalet, or point it at another database',
      )
    }
    for (let v = version; v < migrations.length; v++) db.exec(migrations[v] as string)
    if (version !== migrations.length) db.exec(`PRAGMA user_version = ${migrations.length}`)
    db.exec('COMMIT')
  } catch (err) {
    if (db.isTransaction) db.exec('ROLLBACK')
    throw err
  }
}
