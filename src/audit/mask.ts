import type { MaskPatterns } from '../redact/patterns.ts'
import { maskText } from '../redact/redactor.ts'
import type { AuditFields } from './record.ts'

/**
 * A string that ends inside an occurrence (a bounded field that cut it short) has that part
 * masked once it holds this many bytes of it: fewer say too little, and a short cut-off piece is
 * more often a coincidence than a secret.
 */
const CUT_AT = 8
/** Records are flat but for `detail`, which keyvalet's own code fills; deeper is not walked into. */
const MAX_DEPTH = 8

/**
 * The record's fields whose values keyvalet writes itself, from a closed set or as an id it
 * generated, so that no vault value can be in them: they are not searched. Every other string is,
 * whoever put it there (the sandbox, an upstream, the operator's configuration or session facts).
 */
export const WRITTEN_BY_KEYVALET: ReadonlySet<string> = new Set<keyof AuditFields>([
  'request_id', // req_ and a counter (proxy/handler.ts)
  'mode', // gateway, forward, admin, keyvalet
  'session', // the session's id, ses_ and random hex (sessions/)
  'decision', // allow, deny, error, would_deny
  'error', // a code of errors.ts
  'config_version', // cfg_ and a digest (config/version.ts)
  'phase', // open, close
])

/**
 * The record with every form of the given values masked in every string it holds (its fields,
 * and at any depth inside `detail`), but those WRITTEN_BY_KEYVALET: the last step before it is
 * written, so that whatever put a value there (an upstream's words, a token endpoint's answer),
 * the audit never holds one. A string too short to hold an occurrence (fewer bytes than the
 * shortest form and than CUT_AT) is not searched: nothing in it could be masked.
 */
export function maskRecord(fields: AuditFields, mask: MaskPatterns): AuditFields {
  if (mask.empty) return fields
  // The fewest bytes a string must have for maskText to change it: a whole form, or a cut-off piece of CUT_AT.
  const least = Math.min(mask.shortestForm, CUT_AT)
  const record = fields as unknown as Record<string, unknown>
  let copy: Record<string, unknown> | undefined
  for (const key of Object.keys(record)) {
    if (WRITTEN_BY_KEYVALET.has(key)) continue
    const v = record[key]
    const masked = maskValue(v, mask, least, 1)
    if (masked !== v) (copy ??= { ...record })[key] = masked
  }
  return (copy ?? record) as unknown as AuditFields
}

function maskValue(value: unknown, mask: MaskPatterns, least: number, depth: number): unknown {
  if (typeof value === 'string') return value.length < least && Buffer.byteLength(value, 'utf8') < least ? value : maskText(mask, value, 'utf8', CUT_AT).text
  if (depth >= MAX_DEPTH || typeof value !== 'object' || value === null) return value
  // Copied only where something was masked: the record as it was, when nothing was.
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i]
      const masked = maskValue(v, mask, least, depth + 1)
      if (masked !== v) (copy ??= [...value])[i] = masked
    }
    return copy ?? value
  }
  const record = value as Record<string, unknown>
  let copy: Record<string, unknown> | undefined
  for (const key of Object.keys(record)) {
    const v = record[key]
    const masked = maskValue(v, mask, least, depth + 1)
    if (masked !== v) (copy ??= { ...record })[key] = masked
  }
  return copy ?? value
}
