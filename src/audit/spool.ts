import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import type { AuditRepo, NewAuditRow } from '../store/store.ts'

export interface SpoolOptions {
  /** The spool's folder: `<data_dir>/audit-spool`. */
  readonly dir: string
  /** Bytes of spooled rows at most (audit.spool_bytes). */
  readonly maxBytes: number
  /** fsync each write before it counts as done (audit.fsync). */
  readonly fsync: boolean
}

/** Rows pushed into the store per transaction when the spool is flushed. */
const FLUSH_PAGE = 500

/**
 * Audit rows a PostgreSQL store could not take (it was unreachable), kept on local disk until it
 * can: one file per chain (`<instance>.jsonl`, a row as JSON per line), appended and, when so
 * configured, fsynced before `add` returns — a spooled record is as durable as a committed one
 * would have been on this host. Bounded: `add` refuses rows past `maxBytes`. `flushInto` moves the
 * rows into the store in order, skipping those the store already holds (a commit whose answer
 * was lost may have landed), and removes them here once they are committed there. A spool left
 * by a process that stopped meanwhile is read at open and flushed with the rest.
 */
export class AuditSpool {
  readonly #options: SpoolOptions
  #rows: NewAuditRow[] = []
  #bytes = 0

  private constructor(options: SpoolOptions) {
    this.#options = options
  }

  static open(options: SpoolOptions): AuditSpool {
    mkdirSync(options.dir, { recursive: true, mode: 0o700 })
    const spool = new AuditSpool(options)
    for (const name of readdirSync(options.dir).filter((n) => n.endsWith('.jsonl')).sort()) {
      for (const text of readFileSync(join(options.dir, name), 'utf8').split('\n')) {
        const row = parseRow(text)
        // A torn last line (a crash mid-write) was never reported written: it is not owed.
        if (row === undefined) continue
        spool.#rows.push(row)
        spool.#bytes += Buffer.byteLength(text) + 1
      }
    }
    return spool
  }

  /** Rows waiting for the store. */
  get pending(): number {
    return this.#rows.length
  }

  /** The last spooled row of `instance`'s chain, if any: the chain goes on from it. */
  lastOf(instance: string): NewAuditRow | undefined {
    return this.#rows.findLast((row) => row.instance === instance)
  }

  /** Writes the rows (durably, as configured); false, writing none, when they do not fit. */
  add(rows: readonly NewAuditRow[]): boolean {
    const lines = rows.map((row) => JSON.stringify(row))
    const bytes = lines.reduce((sum, line) => sum + Buffer.byteLength(line) + 1, 0)
    if (this.#bytes + bytes > this.#options.maxBytes) return false
    const byInstance = new Map<string, string[]>()
    rows.forEach((row, i) => byInstance.set(row.instance, [...(byInstance.get(row.instance) ?? []), lines[i] as string]))
    for (const [instance, texts] of byInstance) appendDurably(this.#file(instance), `${texts.join('\n')}\n`, this.#options.fsync)
    this.#rows.push(...rows)
    this.#bytes += bytes
    return true
  }

  /** Moves every spooled row into the store, in order; throws (keeping what is left) when the store fails. */
  async flushInto(repo: AuditRepo): Promise<void> {
    if (this.#rows.length === 0) return
    try {
      const ends = new Map<string, number>()
      for (const instance of new Set(this.#rows.map((r) => r.instance))) ends.set(instance, (await repo.chainLast(instance))?.chainSeq ?? 0)
      while (this.#rows.length > 0) {
        const page = this.#rows.slice(0, FLUSH_PAGE)
        const owed = page.filter((row) => row.chainSeq > (ends.get(row.instance) ?? 0))
        if (owed.length > 0) await repo.append(owed)
        this.#rows = this.#rows.slice(page.length)
      }
    } finally {
      this.#rewrite()
    }
  }

  #file(instance: string): string {
    return join(this.#options.dir, `${instance === '' ? 'legacy' : instance}.jsonl`)
  }

  /** The files again, holding exactly the rows still owed (none: no file). */
  #rewrite(): void {
    for (const name of readdirSync(this.#options.dir).filter((n) => n.endsWith('.jsonl'))) {
      const path = join(this.#options.dir, name)
      const kept = this.#rows.filter((row) => this.#file(row.instance) === path)
      if (kept.length === 0) {
        unlinkSync(path)
        continue
      }
      const next = `${path}.next`
      appendDurably(next, `${kept.map((row) => JSON.stringify(row)).join('\n')}\n`, true)
      renameSync(next, path)
    }
    this.#bytes = this.#rows.reduce((sum, row) => sum + Buffer.byteLength(JSON.stringify(row)) + 1, 0)
  }
}

function appendDurably(path: string, text: string, fsync: boolean): void {
  const fd = openSync(path, 'a', 0o600)
  try {
    writeSync(fd, text)
    if (fsync) fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

function parseRow(text: string): NewAuditRow | undefined {
  if (text === '') return undefined
  try {
    const row = JSON.parse(text) as NewAuditRow
    if (typeof row.instance !== 'string' || typeof row.chainSeq !== 'number' || typeof row.hash !== 'string' || typeof row.line !== 'string') return undefined
    return row
  } catch {
    return undefined
  }
}
