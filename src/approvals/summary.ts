/**
 * What an approver reads about a parked request's body: the rule's template over its JSON fields,
 * or a bounded rendering of the JSON with the values of secret-looking fields redacted. Never the
 * raw bytes of a body that is not JSON (its size and type instead). Control characters are
 * removed everywhere, so a body cannot forge lines in a terminal or a chat message.
 */

const FIELD_LIMIT = 200
const SUMMARY_LIMIT = 2000
const DEPTH_LIMIT = 6
const ITEMS_LIMIT = 20
/** Field names whose values are never shown. */
const SECRET_NAME = /(token|secret|passw|pwd|api[-_]?key|^key$|private|credential|authori[sz]ation|cookie|session)/i
const TEMPLATE_FIELD = /\{([A-Za-z0-9_$-]+(?:\.[A-Za-z0-9_$-]+)*)\}/g

/** Text safe to show: control characters (C0, DEL, C1, bidi overrides, line separators) removed, cut at `limit` characters. */
export function safeText(text: string, limit: number): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069]/g, ' ')
  return clean.length <= limit ? clean : `${clean.slice(0, limit - 1)}…`
}

/** The summary of a request with this body (undefined: none) under the rule's template (undefined: the default rendering). */
export function approvalSummary(template: string | undefined, body: Buffer | undefined, contentType: string | undefined): string {
  const json = parsed(body)
  if (template !== undefined) {
    return safeText(template.replace(TEMPLATE_FIELD, (_, path: string) => {
      const value = json === NOT_JSON ? undefined : at(json, path.split('.'))
      return value === undefined ? '?' : safeText(typeof value === 'string' ? value : JSON.stringify(value), FIELD_LIMIT)
    }), SUMMARY_LIMIT)
  }
  if (body === undefined || body.length === 0) return '(no body)'
  if (json === NOT_JSON) return safeText(`(${body.length} bytes of ${contentType ?? 'unknown type'}, not shown)`, SUMMARY_LIMIT)
  return safeText(JSON.stringify(rendered(json, 0)), SUMMARY_LIMIT)
}

const NOT_JSON = Symbol('not json')

function parsed(body: Buffer | undefined): unknown {
  if (body === undefined || body.length === 0) return NOT_JSON
  try {
    return JSON.parse(body.toString('utf8')) as unknown
  } catch {
    return NOT_JSON
  }
}

function at(value: unknown, path: readonly string[]): unknown {
  let here = value
  for (const key of path) {
    if (here === null || typeof here !== 'object' || !Object.hasOwn(here, key)) return undefined
    here = (here as Record<string, unknown>)[key]
  }
  return here
}

/** The value bounded: strings cut, arrays and objects to ITEMS_LIMIT entries and DEPTH_LIMIT levels, secret-named fields redacted. */
function rendered(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return safeText(value, FIELD_LIMIT)
  if (value === null || typeof value !== 'object') return value
  if (depth >= DEPTH_LIMIT) return '…'
  if (Array.isArray(value)) {
    const shown = value.slice(0, ITEMS_LIMIT).map((v) => rendered(v, depth + 1))
    return value.length > ITEMS_LIMIT ? [...shown, `… ${value.length - ITEMS_LIMIT} more`] : shown
  }
  const out: Record<string, unknown> = {}
  const entries = Object.entries(value)
  for (const [key, v] of entries.slice(0, ITEMS_LIMIT)) out[safeText(key, 64)] = SECRET_NAME.test(key) ? '[redacted]' : rendered(v, depth + 1)
  if (entries.length > ITEMS_LIMIT) out['…'] = `${entries.length - ITEMS_LIMIT} more fields`
  return out
}
