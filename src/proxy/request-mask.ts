import type { OutgoingHttpHeaders } from 'node:http'
import { MaskPatterns } from '../redact/patterns.ts'
import { maskText } from '../redact/redactor.ts'
import type { RequestContext } from './context.ts'

const NONE = MaskPatterns.of([])
const made = new WeakMap<RequestContext, { readonly credential: unknown; readonly assertion: unknown; readonly mask: MaskPatterns }>()

/**
 * What the upstream may not echo back to the sandbox, and the audit may not record: every form of
 * the credential attached to this request (compiled once per value by the credential stage) and of
 * its signed assertion (compiled here, once per request and credential).
 */
export function requestMask(ctx: RequestContext): MaskPatterns {
  const credential = ctx.credential
  const assertion = ctx.assertion
  // Without an assertion the credential's own mask is the whole of it: nothing to compile or keep.
  if (assertion === undefined) return credential?.mask ?? NONE
  const known = made.get(ctx)
  if (known !== undefined && known.credential === credential && known.assertion === assertion) return known.mask
  const mask = MaskPatterns.merge(credential?.mask ?? NONE, MaskPatterns.of([assertion.token]))
  made.set(ctx, { credential, assertion, mask })
  return mask
}

/** Masks the secrets' forms in every header value (latin1, as Node holds them); returns how many were masked. */
export function maskHeaders(headers: OutgoingHttpHeaders, mask: MaskPatterns): number {
  if (mask.empty) return 0
  let count = 0
  const clean = (v: string): string => {
    const r = maskText(mask, v, 'latin1')
    count += r.count
    return r.text
  }
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || typeof value === 'number') continue
    headers[name] = Array.isArray(value) ? value.map(clean) : clean(value)
  }
  return count
}
