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
  readonly #placeholders: readonly { connector: string; value: string }[]
  readonly #keep: number
  #tail = ''

  constructor(placeholders: readonly { connector: string; value: string }[]) {
    this.#placeholders = placeholders
    this.#keep = Math.max(KEY_LENGTH, ...placeholders.map((p) => p.value.length)) - 1
  }

  /** Throws task_key_misplaced / placeholder_misplaced when the body so far holds one. */
  scan(chunk: Buffer): void {
    const text = this.#tail + chunk.toString('latin1')
    TASK_KEY_PATTERN.lastIndex = 0
    if (TASK_KEY_PATTERN.test(text)) throw new KeyvaletError('task_key_misplaced', { detail: { where: 'body' } })
    for (const p of this.#placeholders) {
      if (text.includes(p.value)) throw new KeyvaletError('placeholder_misplaced', { detail: { where: 'body', placeholder_of: p.connector } })
    }
    this.#tail = text.slice(-this.#keep)
  }
}
