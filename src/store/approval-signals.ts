/**
 * How a store tells the instances that hold parked requests that an approval's state changed, so
 * that they wake at once instead of at their next poll (approvals/approvals.ts). Best-effort by
 * contract: a change the store cannot hear of (another process on SQLite, a notification lost with
 * its connection) is found by the poll, which stays as the fallback.
 */
export interface ApprovalSignals {
  /**
   * Calls `listener` with the id of an approval whose state changed, or with undefined when
   * changes may have gone unheard (every waiting approval should be looked at). Returns the
   * function that stops it.
   */
  watch(listener: (id: string | undefined) => void): () => void
}

/** Listeners of one source of signals. */
export class ApprovalListeners implements ApprovalSignals {
  readonly #listeners = new Set<(id: string | undefined) => void>()

  get size(): number {
    return this.#listeners.size
  }

  watch(listener: (id: string | undefined) => void): () => void {
    this.#listeners.add(listener)
    return () => void this.#listeners.delete(listener)
  }

  tell(id: string | undefined): void {
    for (const listener of this.#listeners) listener(id)
  }
}
