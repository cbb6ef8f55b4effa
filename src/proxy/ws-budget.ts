import type { Budgets } from '../budgets/budgets.ts'
import type { KeyvaletError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { RequestContext } from './context.ts'

/** How often an open WebSocket's bytes are charged to its budgets (and checked against them). */
export const SOCKET_CHARGE_MS = 1000

/** What watchSocketBudget needs of the relay: its close with a close code. */
type CloseRelay = (reason: KeyvaletError) => void

/**
 * While a WebSocket admitted against post-paid budgets (bytes up, bytes down) is open: every
 * SOCKET_CHARGE_MS the bytes relayed since the last charge are charged, and once a limit has
 * been reached the relay is closed (`close`: close frames, 1008) with the budget's refusal, which
 * its closing record carries. So a long-lived socket spends from its budgets as it goes, not only
 * when it ends, and can overrun a limit by at most what it relays in one interval. `settle`
 * (when the relay is over, before the closing record) charges the rest; it is charged once.
 * Nothing is watched for a socket no byte budget applies to.
 */
export function watchSocketBudget(ctx: RequestContext, budgets: Budgets, clock: () => number, log: Logger, close: CloseRelay): { settle(): Promise<void> } {
  const admission = ctx.budget
  if (admission === undefined || admission.charges.length === 0) return { settle: async () => {} }
  ctx.budget = undefined // charged here, not by the handler's charge
  const charged = { up: 0, down: 0 }
  let pending: Promise<void> = Promise.resolve()
  const step = (then: (refusal: KeyvaletError | undefined) => void): Promise<void> => {
    pending = pending.then(async () => {
      const spent = { bytes_up: ctx.bytesIn - charged.up, bytes_down: ctx.bytesOut - charged.down, tokens: 0, cost: 0 }
      charged.up = ctx.bytesIn
      charged.down = ctx.bytesOut
      then(await budgets.chargeOpen(admission, spent, clock()))
    }).catch((err: unknown) => log.error('budget charge failed', { request_id: ctx.id, error: String(err) }))
    return pending
  }
  const timer = setInterval(() => void step((refusal) => { if (refusal !== undefined) close(refusal) }), SOCKET_CHARGE_MS).unref()
  return {
    settle() {
      clearInterval(timer)
      return step(() => {})
    },
  }
}
