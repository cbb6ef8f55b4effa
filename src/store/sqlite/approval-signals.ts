import { ApprovalListeners, type ApprovalSignals } from '../approval-signals.ts'

/** By database file: the listeners of every store object on it in this process. */
const byFile = new Map<string, ApprovalListeners>()

/**
 * Approval signals on SQLite, within this process: a state change made through any store object
 * on the same database file is told to every listener on that file. Other processes (the CLI,
 * another keyvalet) are not heard: their decisions reach a waiting request at its next poll.
 */
export function sqliteApprovalSignals(file: string): ApprovalSignals & { tell(id: string): void } {
  return {
    watch(listener) {
      let listeners = byFile.get(file)
      if (listeners === undefined) byFile.set(file, (listeners = new ApprovalListeners()))
      const stop = listeners.watch(listener)
      return () => {
        stop()
        if (listeners.size === 0 && byFile.get(file) === listeners) byFile.delete(file)
      }
    },
    tell: (id) => byFile.get(file)?.tell(id),
  }
}
