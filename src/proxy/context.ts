import type { IncomingMessage } from 'node:http'
import type { Decision } from '../policy/decision.ts'
import type { Connector } from '../policy/types.ts'
import type { Session } from '../store/store.ts'
import type { UpstreamResponse } from './stages/forward.ts'

/**
 * The typed per-request record that stages fill in, in order. A field is set by exactly one stage
 * (named beside it); later stages may read it. The runner turns it into the audit record.
 */
export interface RequestContext {
  readonly id: string
  readonly mode: 'gateway'
  readonly req: IncomingMessage
  /** process.hrtime.bigint() at arrival. */
  readonly started: bigint
  /** The protocol an upgrade request asks for (lower-case), set by the listener. */
  readonly upgrade?: string
  /** authenticate (also set for a revoked or expired key, for the audit record only: the pipeline stops there) */
  session?: Session
  /** route */
  connector?: Connector
  /** route: normalised segments below the connector, and the raw path to send (upstream base included). */
  segments?: readonly string[]
  path?: string
  rawQuery?: string
  /** decide */
  decision?: Decision
  /** decide: the body, when a rule needed to read it. */
  body?: Buffer
  /** credential: the secret name and its value. The value lives only here and in outbound headers. */
  credential?: { readonly secret: string; readonly value: string; readonly echoForms: readonly string[] }
  /** inject: what will be sent upstream. */
  outbound?: { headers: Record<string, string | string[]>; query: string }
  /** forward: the upstream's response head and body, for the relay. */
  upstream?: UpstreamResponse
  /** relay */
  upstreamStatus?: number
  bytesIn: number
  bytesOut: number
  redactions: number
}
