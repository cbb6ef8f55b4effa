import assert from 'node:assert/strict'
import { LISTEN_APPLICATION_NAME } from '../../src/store/postgres/change-feed.ts'
import type { TestPostgres } from './postgres.ts'

/**
 * How long until `check` is ok, from `since` (performance.now()), polling every 5 ms; fails the
 * test after 3 × `limitMs` with the last answer (bounded: so that a slow propagation is measured, not hung on).
 */
export async function propagatedWithin(since: number, limitMs: number, check: () => Promise<{ ok: boolean; last: unknown }>): Promise<number> {
  let last: unknown
  for (let i = 0; i < (3 * limitMs) / 5; i++) {
    const result = await check()
    if (result.ok) return performance.now() - since
    last = result.last
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  assert.fail(`not seen within ${3 * limitMs} ms; last answer: ${JSON.stringify(last)}`)
}

/** Ends every LISTEN connection to `database`, server-side, once `instances` of them are up (bounded: 10 s); returns how many were ended. */
export async function killListenConnections(server: TestPostgres, database: string, instances = 3): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const [row] = await server.admin`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = ${LISTEN_APPLICATION_NAME} AND datname = ${database}`
    if (row?.n === instances) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const killed = await server.admin`SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity
    WHERE application_name = ${LISTEN_APPLICATION_NAME} AND datname = ${database}`
  return killed.filter((row) => row.done === true).length
}
