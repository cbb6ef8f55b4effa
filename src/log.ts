/**
 * The operator log: one line per event on a stream, as JSON or logfmt, at or above a level.
 * Passed in, never a global, so tests can capture it. Callers must not put secret material in
 * `fields`.
 */
export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
  error(msg: string, fields?: Record<string, unknown>): void
  /** Whether info lines are written (so a caller can skip building one that would be dropped). */
  readonly infoEnabled?: boolean
}

export const LOG_LEVELS = ['info', 'warn', 'error'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]
export const LOG_FORMATS = ['json', 'logfmt'] as const
export type LogFormat = (typeof LOG_FORMATS)[number]

export interface LoggerOptions {
  readonly level?: LogLevel
  readonly format?: LogFormat
  readonly clock?: () => number
  /**
   * Lines go out together, rather than one write each: those written within BATCH_WINDOW_MS of the
   * first one not yet written, in one write at the end of that window (sooner once BATCH_MAX_CHARS
   * are waiting, and at exit). stdout on a pipe is written synchronously, and each write wakes the
   * process that reads it: at low load every request is alone in its turn of the event loop, so
   * each request line was a write of its own (strace, the bench's idle pattern: 903 writes to
   * stdout for ~2,350 requests turn by turn, 176 batched).
   */
  readonly batched?: boolean
}

/** How long a batched line may wait for others to go out with it. */
export const BATCH_WINDOW_MS = 20
/** Characters waiting that make a batch go out at once, whatever its window: bounds what a burst holds in memory. */
export const BATCH_MAX_CHARS = 64 * 1024

export function createLogger(out: { write(line: string): unknown } = process.stderr, opts: LoggerOptions = {}): Logger {
  const { level = 'info', format = 'json', clock = Date.now } = opts
  const min = LOG_LEVELS.indexOf(level)
  const render = format === 'logfmt' ? logfmtLine : jsonLine
  const emit = opts.batched === true ? batchedWriter(out) : (line: string): unknown => out.write(line)
  const write = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (LOG_LEVELS.indexOf(lvl) < min) return
    emit(render(new Date(clock()).toISOString(), lvl, msg, fields))
  }
  return {
    info: (msg, fields) => write('info', msg, fields),
    warn: (msg, fields) => write('warn', msg, fields),
    error: (msg, fields) => write('error', msg, fields),
    infoEnabled: min === 0,
  }
}

function batchedWriter(out: { write(line: string): unknown }): (line: string) => void {
  let pending = ''
  let timer: NodeJS.Timeout | undefined
  const flush = (): void => {
    clearTimeout(timer)
    timer = undefined
    if (pending === '') return
    const text = pending
    pending = ''
    out.write(text)
  }
  process.once('exit', flush)
  return (line) => {
    pending += line
    if (pending.length >= BATCH_MAX_CHARS) flush()
    // Unref'd: lines waiting do not keep the process alive; exit writes them.
    else timer ??= setTimeout(flush, BATCH_WINDOW_MS).unref()
  }
}

function jsonLine(time: string, level: LogLevel, msg: string, fields: Record<string, unknown> | undefined): string {
  const head = `{"time":${JSON.stringify(time)},"level":"${level}","msg":${JSON.stringify(msg)}`
  // The fields' own JSON spliced after the head (no copy of them per line), unless they would
  // repeat one of its names (then they replace it, as a spread does).
  if (fields === undefined || 'time' in fields || 'level' in fields || 'msg' in fields) return `${JSON.stringify({ time, level, msg, ...fields })}\n`
  const rest = JSON.stringify(fields)
  return rest === '{}' ? `${head}}\n` : `${head},${rest.slice(1)}\n`
}

/**
 * logfmt: `key=value` pairs; a value with a space, `=`, a quote or a control character is a JSON
 * string (quoted, escaped); an object or array is its JSON text, quoted the same way.
 */
function logfmtLine(time: string, level: LogLevel, msg: string, fields: Record<string, unknown> | undefined): string {
  let line = `time=${time} level=${level} msg=${logfmtValue(msg)}`
  if (fields !== undefined) {
    for (const [key, value] of Object.entries(fields)) {
      if (value === undefined) continue
      line += ` ${key.replace(/[^\w.-]/g, '_')}=${logfmtValue(value)}`
    }
  }
  return `${line}\n`
}

function logfmtValue(value: unknown): string {
  const text = typeof value === 'string' ? value : value === null || typeof value !== 'object' ? String(value) : JSON.stringify(value)
  return text === '' || /[\s="\\\u0000-\u001f\u007f]/.test(text) ? JSON.stringify(text) : text
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {}, infoEnabled: false }
