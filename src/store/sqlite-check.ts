import { existsSync, statSync } from 'node:fs'
import { DatabaseSync } from 'node:sqlite'
import { OperatorError } from '../errors.ts'
import { DAMAGED_HINT } from './sqlite-file.ts'
import { auditPathFor } from './sqlite-store.ts'

/** What checking one database file found. */
export interface FileCheck {
  readonly file: string
  /** SQLite's own words for the first problems found; empty when the file is sound. */
  readonly problems: readonly string[]
  /** How much of the file was read, in words for the operator. */
  readonly scope: string
  readonly ms: number
}

/**
 * Above this size the start check reads only part of a file. Measured on an audit file of 1M
 * records (783 MiB): `PRAGMA quick_check` of every page takes about 1.3 s from the page cache and
 * 17 s from this machine's disk (about 50 MB/s), so 64 MiB (about 85k records) costs at most
 * about 0.1 s warm and 1.4 s cold; the bounded check of the 1M-record file took 72 ms warm and
 * 430 ms cold. `keyvalet db check` (integrity_check) of that file: about 1 s warm, 10 to 20 s cold.
 */
export const START_CHECK_BYTES = 64 * 1024 * 1024

/**
 * Checks the store's two files (keyvalet.db and its audit file) through SQLite only, on
 * connections of its own that write nothing (safe beside a running keyvalet).
 *
 * - `full` (`keyvalet db check`): `PRAGMA integrity_check` over every page, however large.
 * - `start`: `PRAGMA quick_check` (every page, without cross-checking indexes against tables)
 *   when the file is at most `budgetBytes`; a larger file is checked in bounded time instead:
 *   its header and schema, then about `budgetBytes` of the newest rows, read and decoded. The
 *   newest pages are those a crash can have left torn, and those appends and `audit tail` build
 *   on; the rest waits for `keyvalet db check`.
 *
 * A missing or empty file is sound: it is a database not yet created.
 */
export function checkStoreFiles(databasePath: string, depth: 'start' | 'full', budgetBytes = START_CHECK_BYTES): FileCheck[] {
  return [databasePath, auditPathFor(databasePath)].map((file) => checkFile(file, depth, budgetBytes))
}

/** Refuses a damaged store: the error names each damaged file and what SQLite found first. */
export function assertSound(checks: readonly FileCheck[]): void {
  const damaged = checks.filter((c) => c.problems.length > 0)
  if (damaged.length === 0) return
  throw new OperatorError(damaged.map((c) => `the database ${c.file} is damaged (${c.problems[0]})`).join('; '), DAMAGED_HINT)
}

function checkFile(file: string, depth: 'start' | 'full', budgetBytes: number): FileCheck {
  const started = performance.now()
  let scope = 'not created yet'
  const done = (problems: readonly string[]): FileCheck => ({ file, problems, scope, ms: Math.round(performance.now() - started) })
  const size = existsSync(file) ? statSync(file).size : 0
  if (size === 0) return done([])
  let db: DatabaseSync | undefined
  try {
    // Read-only: closing it never checkpoints or deletes the -wal, so a damaged file and its
    // write-ahead log stay exactly as they were found.
    db = new DatabaseSync(file, { readOnly: true, timeout: 5000 })
    if (depth === 'full') {
      scope = 'every page, indexes against tables (integrity_check)'
      return done(pragmaCheck(db, 'integrity_check'))
    }
    if (size <= budgetBytes) {
      scope = 'every page (quick_check)'
      return done(pragmaCheck(db, 'quick_check'))
    }
    scope = `header, schema and the newest rows, about ${amount(budgetBytes)} of ${amount(size)} (keyvalet db check reads the rest)`
    readNewestRows(db, budgetBytes)
    return done([])
  } catch (err) {
    // SQLITE_NOTADB, SQLITE_CORRUPT (a short file, a page too damaged for the pragma to report on).
    return done([err instanceof Error ? err.message : String(err)])
  } finally {
    db?.close()
  }
}

function pragmaCheck(db: DatabaseSync, pragma: 'integrity_check' | 'quick_check'): string[] {
  const lines = db.prepare(`PRAGMA ${pragma}(100)`).all().flatMap((row) => String(row[pragma]).split('\n'))
  return lines.length === 1 && lines[0] === 'ok' ? [] : lines.filter((line) => !line.startsWith('*** '))
}

/**
 * Reads and decodes about `budgetBytes` of the newest rows (highest rowids) of every rowid table:
 * SQLite raises SQLITE_CORRUPT on any malformed page it meets. The newest 1000 rows give the
 * bytes per rowid, hence where to start; the scan then runs in rowid order, which is file order
 * for appended rows (measured: five times faster from disk than reading backwards).
 */
function readNewestRows(db: DatabaseSync, budgetBytes: number): void {
  const tables = db.prepare("SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' AND wr = 0 AND name NOT LIKE 'sqlite_%' ORDER BY name").all()
  let left = budgetBytes
  for (const { name } of tables) {
    const columns = db.prepare('SELECT name FROM pragma_table_info(?)').all(String(name))
    // length() of a value cast to a BLOB needs the whole value: every page of the row is read.
    const bytes = columns.map((c) => `coalesce(length(CAST(${quoteName(String(c.name))} AS BLOB)), 0)`).join(' + ')
    const scan = (order: 'ASC' | 'DESC', limit: number) => db.prepare(
      `SELECT count(*) AS n, total(bytes) AS bytes, min(id) AS low, max(id) AS high FROM
         (SELECT rowid AS id, ${bytes} AS bytes FROM ${quoteName(String(name))} WHERE rowid >= ? ORDER BY rowid ${order} LIMIT ${limit})`,
    )
    const newest = scan('DESC', 1000).get(Number.MIN_SAFE_INTEGER)
    if (newest === undefined || newest.n === 0) continue
    const perRowid = Number(newest.bytes) / Math.max(1, Number(newest.high) - Number(newest.low) + 1)
    const from = Math.max(Number.MIN_SAFE_INTEGER, Math.floor(Number(newest.high) - left / Math.max(1, perRowid)))
    left -= Number(scan('ASC', -1).get(from)?.bytes ?? 0)
    if (left <= 0) return
  }
}

const quoteName = (name: string): string => `"${name.replaceAll('"', '""')}"`
const amount = (bytes: number): string => (bytes < 1024 * 1024 ? `${Math.round(bytes / 1024)} KiB` : `${Math.round(bytes / 1024 / 1024)} MiB`)
