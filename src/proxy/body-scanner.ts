import { KeyvaletError } from '../errors.ts'
import { TASK_KEY_PATTERN, TASK_KEY_PREFIX } from '../sessions/task-key.ts'

const KEY_LENGTH = TASK_KEY_PREFIX.length + 49

/**
 * Looks for a task key or a placeholder in a request body as it streams (across chunk
 * boundaries): either one in a body is an exfiltration attempt, and the request is refused. Only
 * their plain forms are found (not base64, JSON escapes or compression): a defence in depth, since
 * neither is worth anything outside keyvalet.
 */
export class BodyScanner {
  readonly #placeholders: readonly { connector: string; value: Buffer }[]
  readonly #keep: number
  #tail: Buffer = Buffer.alloc(0)

  constructor(placeholders: readonly { connector: string; value: string }[]) {
    this.#placeholders = placeholders.map((p) => ({ connector: p.connector, value: Buffer.from(p.value, 'utf8') }))
    this.#keep = Math.max(KEY_LENGTH, ...this.#placeholders.map((p) => p.value.length)) - 1
  }

  /** Throws task_key_misplaced / placeholder_misplaced when the body so far holds one. */
  scan(chunk: Buffer): void {
    // The seam between the previous chunk and this one, then the chunk itself: native searches
    // only, so a large upload is not turned into strings.
    this.#check(Buffer.concat([this.#tail, chunk.subarray(0, this.#keep)]))
    this.#check(chunk)
    const tail = chunk.length >= this.#keep ? chunk.subarray(chunk.length - this.#keep) : Buffer.concat([this.#tail, chunk]).subarray(-this.#keep)
    this.#tail = Buffer.from(tail)
  }

  #check(buf: Buffer): void {
    if (buf.includes(PREFIX)) {
      TASK_KEY_PATTERN.lastIndex = 0
      if (TASK_KEY_PATTERN.test(buf.toString('latin1'))) throw new KeyvaletError('task_key_misplaced', { detail: { where: 'body' } })
    }
    for (const p of this.#placeholders) {
      if (buf.includes(p.value)) throw new KeyvaletError('placeholder_misplaced', { detail: { where: 'body', placeholder_of: p.connector } })
    }
  }
}

const PREFIX = Buffer.from(TASK_KEY_PREFIX)
