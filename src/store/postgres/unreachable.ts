import { KeyvaletError } from '../../errors.ts'

/** Connection-level failures of the driver (postgres.js names them by these codes). */
const DRIVER_CODES = new Set(['CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'])

/**
 * Whether `err` says the PostgreSQL server could not be reached or went away (the connection
 * failed or broke, the server is shutting down or starting), as opposed to a statement it refused
 * (a constraint, a privilege): a driver error, or what a repo made of one (storeUnavailable). A
 * statement cut off this way may or may not have been committed.
 */
export function isServerUnreachable(err: unknown): boolean {
  if (err instanceof KeyvaletError) return err.code === 'store_unavailable'
  if (typeof err !== 'object' || err === null) return false
  const code = (err as { code?: unknown }).code
  if (typeof code !== 'string') return false
  // SQLSTATE class 08: connection exception; 57P: the server shut the session (shutdown, crash, cannot connect now, idle timeout).
  return DRIVER_CODES.has(code) || code.startsWith('08') || code.startsWith('57P')
}

/** The error a caller gets when the server cannot be reached: 503 store_unavailable, the driver's code as the reason (never its message). */
export function storeUnavailable(err: unknown): KeyvaletError {
  const reason = typeof err === 'object' && err !== null ? String((err as { code?: unknown }).code ?? 'error') : 'error'
  return new KeyvaletError('store_unavailable', { detail: { why: reason }, cause: err })
}

/**
 * The repo with each method's failure to reach the server turned into storeUnavailable, so that
 * every caller (the data plane, the admin API, the CLI, the audit writer's spool) sees one stable
 * error, 503 store_unavailable, instead of a driver error taken for an internal one. Any other
 * failure goes through as it is.
 */
export function reportingUnreachable<T extends object>(repo: T): T {
  const guarded: Record<string, unknown> = {}
  for (const [name, method] of Object.entries(repo) as [string, (...args: unknown[]) => Promise<unknown>][]) {
    const reporting = async (...args: unknown[]): Promise<unknown> => {
      try {
        return await method(...args)
      } catch (err) {
        throw err instanceof KeyvaletError || !isServerUnreachable(err) ? err : storeUnavailable(err)
      }
    }
    guarded[name] = reporting
  }
  return guarded as T
}
