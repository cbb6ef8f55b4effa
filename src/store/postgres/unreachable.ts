/** Connection-level failures of the driver (postgres.js names them by these codes). */
const DRIVER_CODES = new Set(['CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'])

/**
 * Whether `err` says the PostgreSQL server could not be reached or went away (the connection
 * failed or broke, the server is shutting down or starting), as opposed to a statement it refused
 * (a constraint, a privilege). A statement cut off this way may or may not have been committed.
 */
export function isServerUnreachable(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false
  const code = (err as { code?: unknown }).code
  if (typeof code !== 'string') return false
  // SQLSTATE class 08: connection exception; 57P: the server shut the session (shutdown, crash, cannot connect now, idle timeout).
  return DRIVER_CODES.has(code) || code.startsWith('08') || code.startsWith('57P')
}
