/** The audit log's rows and the AuditRepo that stores them (re-exported by store.ts). */
export interface AuditRow {
  /**
   * The row's place in the whole log, every chain together: numbered by the store as rows are
   * appended (never reused), the cursor of `read`, `query` and the live stream.
   */
  readonly seq: number
  /**
   * The chain the row belongs to: the id of the keyvalet instance that wrote it (each writes its
   * own chain, see audit/instance.ts); '' for the one chain of a log written before instances had
   * chains of their own.
   */
  readonly instance: string
  /** The row's place in its chain (1, 2, …): its record's own `seq`. */
  readonly chainSeq: number
  /** The complete record as one canonical JSON line (it carries its own prev and hash). */
  readonly line: string
  readonly hash: string
  /**
   * On a row being appended: the fields of its record that `query` filters on, for the store to
   * keep beside the line (and index). Never returned by reads. A row without them is found by
   * seq only.
   */
  readonly facets?: AuditFacets
}

/** A row to append: the store numbers it (`seq`). */
export type NewAuditRow = Omit<AuditRow, 'seq'>

/** One chain of the log: its instance and how far it goes. */
export interface AuditChain {
  readonly instance: string
  /** Rows the chain holds. */
  readonly rows: number
  /** The `seq` of its newest row. */
  readonly lastSeq: number
}

/** What an audit query can filter on, as the record states it (audit/facets.ts takes them from a record). */
export interface AuditFacets {
  /** ISO 8601 in UTC, as the record's `time`. */
  readonly time: string
  readonly session: string | null
  readonly agent: string | null
  readonly user: string | null
  readonly workspace: string | null
  readonly task: string | null
  readonly connector: string | null
  readonly decision: string
  readonly error: string | null
  /** Which listener (gateway, forward), admin or keyvalet: `summary` counts the requests only. */
  readonly mode: string | null
  /** open or close for a stream's records (AuditFields.phase), null for a record written whole. */
  readonly phase: string | null
}

/** The records a query wants: every field given must match exactly; `since` (inclusive) and `until` (exclusive) bound `time`. */
export interface AuditFilter {
  readonly since?: string
  readonly until?: string
  readonly session?: string
  readonly agent?: string
  readonly user?: string
  readonly workspace?: string
  readonly task?: string
  readonly connector?: string
  readonly decision?: string
  readonly error?: string
}

/** One page of a query: `limit` rows in seq order (`asc`: oldest first), after the row whose seq is `after` in that order. */
export interface AuditPage {
  readonly order: 'asc' | 'desc'
  readonly after?: number
  readonly limit: number
}

export interface AuditRepo {
  /**
   * Appends rows in one transaction, in order, numbering them (`seq`): all of them or none. Each
   * row must continue its chain: its chainSeq is one more than that of the chain's last row (1
   * for a new chain), and no two rows ever share (instance, chainSeq), so two writers can never
   * fork a chain. Each instance writes only its own chain and never reads another's. Rows are
   * numbered in commit order (a row never commits below a seq a reader has seen), so a reader
   * going by seq sees each row exactly once. Durable when it resolves.
   */
  append(rows: readonly NewAuditRow[]): Promise<AuditRow[]>
  /** The last row of one chain; undefined when it has none. */
  chainLast(instance: string): Promise<AuditRow | undefined>
  /** Every chain in the log, in the order of its first row. */
  chains(): Promise<AuditChain[]>
  /** One chain's rows in chainSeq order, starting after `afterChainSeq`. */
  readChain(instance: string, afterChainSeq: number, limit: number): Promise<AuditRow[]>
  /** Rows of every chain in seq order, starting after `afterSeq`. */
  read(afterSeq: number, limit: number): Promise<AuditRow[]>
  /** The rows matching `filter` (by their facets), a page at a time. */
  query(filter: AuditFilter, page: AuditPage): Promise<AuditRow[]>
  /**
   * What the requests recorded in [since, until) came to, counted in the store (never read row by
   * row): each request once (mode gateway or forward, by its record written whole or its closing
   * one; admin calls, keyvalet's own records and a stream's open record are not requests).
   */
  summary(window: AuditWindow): Promise<AuditSummary>
  /** The row with the highest seq, of any chain. */
  last(): Promise<AuditRow | undefined>
}

export interface AuditWindow {
  /** ISO 8601 in UTC, inclusive. */
  readonly since: string
  /** ISO 8601 in UTC, exclusive. */
  readonly until: string
  /** How many connectors and agents to name, the busiest first. */
  readonly top: number
}

export interface AuditSummary {
  /** Requests per minute (`time`'s first 16 characters, 2026-01-01T00:00) and decision; a minute with none is left out. */
  readonly minutes: readonly { readonly minute: string; readonly decision: string; readonly count: number }[]
  /** Refused requests (decision deny or error) per error code, the most frequent first (at most 50 codes). */
  readonly errors: readonly AuditCount[]
  /** The `top` connectors and agents with the most requests (ties by name), null (none) left out. */
  readonly connectors: readonly AuditCount[]
  readonly agents: readonly AuditCount[]
}

/** `count` requests of which `refused` were denied or failed (for errors, every one was). */
export interface AuditCount {
  readonly name: string
  readonly count: number
  readonly refused: number
}
