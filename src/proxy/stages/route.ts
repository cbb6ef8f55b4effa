import { KeyvaletError } from '../../errors.ts'
import { normalisePath, splitTarget } from '../../policy/path.ts'
import type { Policy } from '../../policy/types.ts'
import { TASK_KEY_PATTERN } from '../../sessions/task-key.ts'
import type { Stage } from '../pipeline.ts'

/** Headers that may carry the task key; anywhere else a task key is a smuggling attempt. */
const KEY_SLOTS = new Set(['authorization', 'x-api-key', 'api-key', 'proxy-authorization'])

/**
 * route: `/<connector>/<path>?<query>` → the connector and the strictly normalised path below it.
 * The path decided on is the path sent: ambiguous paths are refused (path_ambiguous), never repaired.
 */
export function createRoute(policy: Policy): Stage {
  return {
    name: 'route',
    run(ctx) {
      const { rawPath, rawQuery } = splitTarget(ctx.req.url ?? '')
      const { segments } = normalisePath(rawPath)
      const name = segments[0] ?? ''
      const connector = policy.connectors.get(name)
      if (connector === undefined) throw new KeyvaletError('connector_unknown', { detail: { connector: name.slice(0, 64) } })
      ctx.connector = connector
      refuseMisplacedKey(ctx.req.url ?? '', ctx.req.headers)
      const rest = rawPath.slice(1 + name.length)
      ctx.segments = segments.length > 1 ? segments.slice(1) : ['']
      ctx.path = connector.upstream.pathname.replace(/\/$/, '') + (rest === '' ? '/' : rest)
      ctx.rawQuery = rawQuery
    },
  }
}

function refuseMisplacedKey(target: string, headers: Record<string, string | string[] | undefined>): void {
  if (hasKey(target)) throw new KeyvaletError('task_key_misplaced', { detail: { where: 'target' } })
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || KEY_SLOTS.has(name)) continue
    if (Array.isArray(value) ? value.some(hasKey) : hasKey(value)) {
      throw new KeyvaletError('task_key_misplaced', { detail: { where: 'header', header: name } })
    }
  }
}

function hasKey(text: string): boolean {
  const plain = text.includes('%') ? decodeLoosely(text) : text
  TASK_KEY_PATTERN.lastIndex = 0
  return TASK_KEY_PATTERN.test(plain)
}

/** Percent-decoding that never throws: a key hidden behind escapes is still a key. */
function decodeLoosely(text: string): string {
  return text.replace(/%([0-9a-fA-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)))
}
