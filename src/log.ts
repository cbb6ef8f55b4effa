/**
 * The operator log: JSON lines on a stream (stderr by default). Passed in, never a global, so
 * tests can capture it. Callers must not put secret material in `fields`.
 */
export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
  error(msg: string, fields?: Record<string, unknown>): void
}

export function createLogger(out: { write(line: string): unknown } = process.stderr, clock: () => number = Date.now): Logger {
  const write = (level: string, msg: string, fields?: Record<string, unknown>): void => {
    out.write(`${JSON.stringify({ time: new Date(clock()).toISOString(), level, msg, ...fields })}\n`)
  }
  return {
    info: (msg, fields) => write('info', msg, fields),
    warn: (msg, fields) => write('warn', msg, fields),
    error: (msg, fields) => write('error', msg, fields),
  }
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {} }
