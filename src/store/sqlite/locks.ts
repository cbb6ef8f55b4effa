import type { LockRepo } from '../store.ts'

/**
 * LockRepo for the SQLite store: holders of a name take turns within this process (each waits for
 * the one before it to settle). Other processes on the same files are not held back; a source
 * that refreshes reads the stored result again before refreshing, which narrows that case to a
 * race between processes (docs/deploy.md).
 */
export function sqliteLocks(): LockRepo {
  const tails = new Map<string, Promise<unknown>>()
  return {
    exclusive: <T>(name: string, work: () => Promise<T>): Promise<T> => {
      const before = tails.get(name) ?? Promise.resolve()
      const mine = before.catch(() => {}).then(work)
      const tail = mine.catch(() => {})
      tails.set(name, tail)
      void tail.then(() => {
        if (tails.get(name) === tail) tails.delete(name)
      })
      return mine
    },
  }
}
