import { KeyvaletError, toKeyvaletError } from '../../errors.ts'
import type { OutboundContext } from '../context.ts'
import type { Stage } from '../pipeline.ts'
import type { AuditSink } from '../request-audit.ts'

/**
 * audit-gate, just before forward: nothing leaves once the audit cannot write. Admission was
 * checked when the request arrived; it is checked again here because a request may take long to
 * get this far (a body read, a token refresh). A request cut meanwhile (the sandbox left,
 * keyvalet is stopping) is not sent either.
 */
export function createAuditGate(audit: Pick<AuditSink, 'available'>): Stage<OutboundContext> {
  return {
    name: 'audit-gate',
    run(ctx) {
      if (!audit.available) throw new KeyvaletError('audit_unavailable', { detail: { why: 'closed_before_forward' } })
      if (ctx.signal?.aborted === true) throw toKeyvaletError(ctx.signal.reason)
    },
  }
}
