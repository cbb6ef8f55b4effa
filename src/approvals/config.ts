/** The `approval` block of a rule and of a connector: their schemas (merged into the config schema) and compile step. */

import Type, { type Static } from 'typebox'
import { DURATION_PATTERN, durationMs } from '../duration.ts'
import type { ApprovalOptions } from '../model/approval.ts'
import { severityRank, type Rule, type Severity } from '../model/policy.ts'
import { Defaulted } from '../schema-kit/builders.ts'
import type { FieldPath } from '../schema-kit/field-path.ts'

/** The longest a request may be held open for a decision. */
export const MAX_APPROVAL_TIMEOUT_MS = 3_600_000

const FIELDS = {
  timeout: Defaulted(Type.String({
    pattern: DURATION_PATTERN,
    errorMessage: 'must be a whole number and a unit: s, m or h (e.g. 120s)',
    default: '120s',
    description:
      "How long the request is held open waiting for a decision; then it is refused (403 approval_timeout). At most 1h, and shorter than limits.idle_timeout_ms. Default 120s: within what most HTTP clients wait for an answer (the OpenAI and Anthropic SDKs 600 s, curl without limit, many libraries 30 to 120 s); a client that gives up first cancels the approval (docs/approvals.md).",
  })),
  summary: Type.Optional(Type.String({
    minLength: 1,
    maxLength: 1000,
    description:
      "What the approver reads about the request: a template over the JSON body, `{field}` or `{a.b.0}` replaced by that field's value (each at most 200 characters, control characters removed; a missing field reads as `?`). Default: a bounded rendering of the JSON body, with the values of fields named like secrets (token, secret, password, key, authorization, ...) redacted.",
  })),
}

export const APPROVAL_BLOCK = Type.Object(FIELDS, {
  additionalProperties: false,
  description:
    'A request this rule allows is held open until a person approves it (admin API, keyvalet approvals, a webhook): nothing reaches the upstream before a yes, and exactly the approved bytes are forwarded. Denied: 403 approval_denied with the reason; no decision in time: 403 approval_timeout. See docs/approvals.md.',
})

export const CONNECTOR_APPROVAL_BLOCK = Type.Object({
  severity: Type.Enum(['read', 'write', 'admin'], { description: "Requests allowed by a rule of this severity or above need approval (a rule's own `approval` block takes precedence)." }),
  ...FIELDS,
}, {
  additionalProperties: false,
  description: "Approval for every request this connector's rules of a severity (or above) allow; see a rule's `approval` and docs/approvals.md.",
})

export type ApprovalFile = Static<typeof APPROVAL_BLOCK>
export type ConnectorApprovalFile = Static<typeof CONNECTOR_APPROVAL_BLOCK>

/** An `approval` block → its options, its problems reported; `idleTimeoutMs`: the timeout must end before the connection would. */
export function compileApproval(raw: ApprovalFile, idleTimeoutMs: number, problem: (f: FieldPath, m: string) => void): ApprovalOptions {
  const timeoutMs = durationMs(raw.timeout) ?? 0
  if (timeoutMs < 1000) problem(['timeout'], 'must be at least 1s')
  if (timeoutMs > MAX_APPROVAL_TIMEOUT_MS) problem(['timeout'], 'must be at most 1h')
  if (timeoutMs >= idleTimeoutMs) problem(['timeout'], `must be shorter than limits.idle_timeout_ms (${idleTimeoutMs} ms), which would close the waiting connection first`)
  return { timeoutMs, summary: raw.summary }
}

/** The rules with the approval they need: their own block, else the connector's for their severity. */
export function withApproval(rules: readonly Rule[], connectorLevel: { readonly severity: Severity; readonly options: ApprovalOptions } | undefined): Rule[] {
  return rules.map((rule) => rule.approval !== undefined || connectorLevel === undefined || severityRank(rule.severity) < severityRank(connectorLevel.severity) ? rule : { ...rule, approval: connectorLevel.options })
}

export const APPROVALS_BLOCK = Type.Object({
  webhook: Type.Optional(Type.Object({
    url: Type.String({ minLength: 1, description: 'Where each new pending approval is POSTed (http:// or https://), e.g. a chat bridge or an on-call tool.' }),
    secret: Type.String({
      minLength: 1,
      description: 'The vault secret (keyvalet secret set NAME) that signs each delivery: header keyvalet-signature: t=UNIX_SECONDS,v1=hex(HMAC-SHA256(secret, t + "." + body)). Receivers check it and refuse a t more than 5 minutes off (docs/approvals.md).',
    }),
    format: Defaulted(Type.Enum(['json', 'slack'], {
      default: 'json',
      description: 'json: {type, approval, links}. slack: the same fields plus `text` and `blocks` (a Slack-compatible card with approve and deny buttons carrying the approval id, for a bot of yours to call the admin API with). Default json.',
    })),
    admin_url: Type.String({
      minLength: 1,
      description: "The admin API as approvers reach it (e.g. https://keyvalet-admin.internal): the links and actions in each delivery point there, never at the sandbox's listeners.",
    }),
  }, { additionalProperties: false, description: 'A signed JSON POST for each request parked for approval, retried 3 times at most (1 s, then 4 s apart) until it is answered 2xx.' })),
}, { additionalProperties: false, default: {}, description: 'How approvers are told that a request waits for them (rules and connectors say which requests need approval: their `approval` block).' })

/** The compiled `approvals.webhook`. */
export interface WebhookOptions {
  readonly url: URL
  /** The vault secret's name. */
  readonly secret: string
  readonly format: 'json' | 'slack'
  readonly adminUrl: URL
}

/** The `approvals` block → its webhook, checked. */
export function compileApprovals(raw: Static<typeof APPROVALS_BLOCK>, problem: (f: FieldPath, m: string) => void): WebhookOptions | undefined {
  const hook = raw.webhook
  if (hook === undefined) return undefined
  const url = httpUrl(hook.url, (m) => problem(['webhook', 'url'], m))
  const adminUrl = httpUrl(hook.admin_url, (m) => problem(['webhook', 'admin_url'], m))
  return { url, secret: hook.secret, format: hook.format, adminUrl }
}

function httpUrl(text: string, problem: (m: string) => void): URL {
  const url = URL.parse(text)
  if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    problem('must be an http:// or https:// URL')
    return new URL('http://invalid.invalid/')
  }
  if (url.username !== '' || url.password !== '') problem('must not carry credentials: the delivery is signed with the vault secret')
  return url
}
