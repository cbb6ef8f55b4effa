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
 * The record with every form of the given values masked in every string it holds (its fields,
 * and at any depth inside `detail`): the last step before it is written, so that whatever put a
 * value there (an upstream's words, a token endpoint's answer), the audit never holds one.
 */
export function maskRecord(fields: AuditFields, mask: MaskPatterns): AuditFields {
  return mask.empty ? fields : (maskValue(fields, mask, 0) as AuditFields)
}

function maskValue(value: unknown, mask: MaskPatterns, depth: number): unknown {
  if (typeof value === 'string') return maskText(mask, value, 'utf8', CUT_AT).text
  if (depth >= MAX_DEPTH || typeof value !== 'object' || value === null) return value
  // Copied only where something was masked: the record as it was, when nothing was.
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined
    value.forEach((v: unknown, i) => {
      const masked = maskValue(v, mask, depth + 1)
      if (masked !== v) (copy ??= [...value])[i] = masked
    })
    return copy ?? value
  }
  let copy: Record<string, unknown> | undefined
  for (const [k, v] of Object.entries(value)) {
    const masked = maskValue(v, mask, depth + 1)
    if (masked !== v) (copy ??= { ...value })[k] = masked
  }
  return copy ?? value
}
