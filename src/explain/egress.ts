import { judgeHost } from '../egress/connect.ts'
import { KeyvaletError } from '../errors.ts'
import type { Connector } from '../model/policy.ts'

/** The egress address check of the connector's upstream host, as far as it can be made without resolving a name. */
export interface Egress {
  readonly host: string
  /** allowed / refused: an IP literal, judged against the egress policy and allow_addresses; a name is judged only when a request resolves it. */
  readonly verdict: 'allowed' | 'refused' | 'resolved_when_sent'
  /** The error code a refused host answers with (upstream_address_refused, upstream_host_invalid). */
  readonly code: string | null
  readonly detail: string
}

export function egressOf(connector: Connector): Egress {
  const host = connector.upstream.hostname
  try {
    if (judgeHost(host, connector.allowAddresses) === 'name') return { host, verdict: 'resolved_when_sent', code: null, detail: `${host} is a name: each address it resolves to is checked when a request is sent` }
    return { host, verdict: 'allowed', code: null, detail: `${host} is allowed${connector.allowAddresses.length === 0 ? '' : ` (allow_addresses: ${connector.allowAddresses.join(', ')})`}` }
  } catch (err) {
    if (!(err instanceof KeyvaletError)) throw err
    const range = typeof err.detail?.range === 'string' ? ` (in ${err.detail.range}; allow_addresses does not cover it)` : ''
    return { host, verdict: 'refused', code: err.code, detail: `${host} is refused${range}` }
  }
}
