import { createHmac } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import type { Logger } from '../log.ts'
import type { Approval } from '../model/approval.ts'
import type { WebhookOptions } from './config.ts'
import { approvalView } from './view.ts'

/** Deliveries of one approval: the first, then after each of these pauses (ms). */
const RETRY_PAUSES_MS = [1000, 4000] as const
/** Each attempt's limit for the receiver's whole answer. */
const ATTEMPT_TIMEOUT_MS = 5000

export interface WebhookDeps {
  readonly options: WebhookOptions
  /** The signing secret, opened from the vault for each delivery (so `secret set` takes effect at once). */
  openSecret(name: string): Promise<Buffer>
  readonly log: Logger
  /** Epoch ms: the signature's timestamp. */
  readonly clock: () => number
  /** Overrides the pauses between attempts (tests). */
  readonly pausesMs?: readonly number[]
}

/**
 * `keyvalet-signature: t=UNIX_SECONDS,v1=HEX` over `t + "." + body` with HMAC-SHA256: the scheme
 * docs/approvals.md tells receivers to check (and to refuse a t more than 5 minutes off, so a
 * captured delivery cannot be replayed later).
 */
export function signature(secret: Buffer, timestampSeconds: number, body: string): string {
  const mac = createHmac('sha256', secret).update(`${timestampSeconds}.${body}`).digest('hex')
  return `t=${timestampSeconds},v1=${mac}`
}

/** What a delivery announces: a new pending approval, or how a parked request's wait ended. */
export type WebhookEvent = 'approval.pending' | 'approval.decided'

/**
 * Tells the webhook of a new pending approval (`approval.pending`), or of how its wait ended
 * (`approval.decided`: approved, denied, expired or cancelled, told once by the instance holding
 * the request): a signed JSON POST, retried (bounded) until it is answered 2xx, each attempt
 * signed anew. Its links and actions point at the admin API, never at the sandbox. A delivery
 * that fails every attempt is logged; the approval still waits, listed by the admin API. Never
 * throws.
 */
export async function deliver(deps: WebhookDeps, approval: Approval, event: WebhookEvent = 'approval.pending'): Promise<void> {
  const body = JSON.stringify(event === 'approval.pending' ? payload(deps.options, approval) : decidedPayload(deps.options, approval))
  const pauses = deps.pausesMs ?? RETRY_PAUSES_MS
  for (let attempt = 0; attempt <= pauses.length; attempt++) {
    if (attempt > 0) await sleep(pauses[attempt - 1])
    try {
      const secret = await deps.openSecret(deps.options.secret)
      const res = await request(deps.options.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'keyvalet-signature': signature(secret, Math.floor(deps.clock() / 1000), body),
          'keyvalet-delivery': `${approval.id}.${attempt + 1}`,
          'keyvalet-event': event,
        },
        body,
        headersTimeout: ATTEMPT_TIMEOUT_MS,
        bodyTimeout: ATTEMPT_TIMEOUT_MS,
      })
      await res.body.dump()
      if (res.statusCode >= 200 && res.statusCode < 300) return
      deps.log.warn('approval webhook refused', { approval: approval.id, event, attempt: attempt + 1, status: res.statusCode })
    } catch (err) {
      deps.log.warn('approval webhook failed', { approval: approval.id, event, attempt: attempt + 1, error: String(err) })
    }
  }
  deps.log.error('approval webhook gave up', { approval: approval.id, event, attempts: pauses.length + 1 })
}

function payload(options: WebhookOptions, approval: Approval): Record<string, unknown> {
  const view = approvalView(approval)
  const api = (path: string): string => new URL(`v1/approvals/${approval.id}${path}`, withSlash(options.adminUrl)).href
  const links = { approval: api(''), approve: api('/approve'), deny: api('/deny') }
  const base = { type: 'approval.pending', approval: view, links }
  if (options.format === 'json') return base
  const text = `${view.agent} (user ${view.user}, task ${view.task}) asks to ${view.method} ${view.host}${view.path}: ${view.summary}`
  return {
    ...base,
    text,
    blocks: [
      { type: 'section', text: { type: 'plain_text', text: text.slice(0, 3000) } },
      { type: 'context', elements: [{ type: 'plain_text', text: `${view.id} · rule ${view.rule} on ${view.connector} · ${view.digest} · expires ${view.expires_at}`.slice(0, 2000) }] },
      {
        type: 'actions',
        block_id: `keyvalet_${view.id}`,
        elements: [
          { type: 'button', action_id: 'keyvalet_approve', style: 'primary', text: { type: 'plain_text', text: 'Approve' }, value: view.id },
          { type: 'button', action_id: 'keyvalet_deny', style: 'danger', text: { type: 'plain_text', text: 'Deny' }, value: view.id },
        ],
      },
    ],
  }
}

/** The decision's announcement: the approval as decided (state, approver, reason), its link, and for chat a line of text without actions. */
function decidedPayload(options: WebhookOptions, approval: Approval): Record<string, unknown> {
  const view = approvalView(approval)
  const base = { type: 'approval.decided', approval: view, links: { approval: new URL(`v1/approvals/${approval.id}`, withSlash(options.adminUrl)).href } }
  if (options.format === 'json') return base
  const by = approval.approver === undefined ? '' : ` by ${approval.approver.name}`
  const reason = approval.reason === undefined ? '' : `: ${approval.reason}`
  const text = `${view.id} ${approval.state}${by}${reason} (${view.agent} asked to ${view.method} ${view.host}${view.path})`
  return { ...base, text, blocks: [{ type: 'section', text: { type: 'plain_text', text: text.slice(0, 3000) } }] }
}

function withSlash(url: URL): URL {
  return url.pathname.endsWith('/') ? url : new URL(`${url.href}/`)
}
