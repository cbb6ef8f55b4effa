import { connect } from 'node:net'
import type { Duplex } from 'node:stream'
import { AddressPolicy } from '../egress/address-policy.ts'
import { toEgressKeyvaletError } from '../egress/egress-error.ts'
import { checkLiteral, createGuardedLookup } from '../egress/guarded-lookup.ts'
import { KeyvaletError } from '../errors.ts'
import type { Session } from '../store/store.ts'
import type { Handler } from './handler.ts'


/**
 * A pass-through tunnel (a `tunnels:` destination): no interception and no credential ever. The
 * upstream is dialed through the egress guard; the record is written once the upstream accepted,
 * before the sandbox gets its 200; then bytes are piped both ways until either side closes.
 */
export function openTunnel(opts: { socket: Duplex; head: Buffer; host: string; port: number; connect: string; session: Session; handler: Handler; timeoutMs: number; allow: readonly string[] }): void {
  const { socket, handler, session } = opts
  // Public addresses only, unless the tunnel entry allows a range (local tests).
  const policy = new AddressPolicy({ allow: opts.allow })
  const id = handler.nextId()
  const base = {
    request_id: id, mode: 'forward', session: session.id, agent: session.agent, user: session.user, workspace: session.workspace, task: session.task,
    connector: null, method: 'CONNECT', path: null, query_keys: [], rule: null, credential: null, bytes_in: 0, bytes_out: 0, redactions: 0, latency_ms: 0,
  } as const
  const refuse = (error: KeyvaletError): void => {
    handler.record({ ...base, decision: error.status >= 500 ? 'error' : 'deny', reason: error.code, status: error.status, upstream_status: null, error: error.code, detail: { connect: opts.connect, ...error.detail } })
      .catch(() => {})
      .finally(() => {
        socket.end(`HTTP/1.1 ${error.status} Refused\r\ncontent-type: application/json\r\nx-keyvalet-error: ${error.code}\r\nconnection: close\r\n\r\n${JSON.stringify({ error: { code: error.code, message: error.message, request_id: id } })}`)
      })
  }
  try {
    checkLiteral(opts.host.replace(/^\[(.*)\]$/, '$1'), policy)
  } catch (err) {
    return refuse(err instanceof KeyvaletError ? err : new KeyvaletError('upstream_host_invalid'))
  }
  const upstream = connect({ host: opts.host.replace(/^\[(.*)\]$/, '$1'), port: opts.port, lookup: createGuardedLookup({ resolver: handler.resolver, policy }) })
  upstream.setTimeout(opts.timeoutMs, () => upstream.destroy(new KeyvaletError('upstream_timeout')))
  upstream.once('error', (err) => refuse(err instanceof KeyvaletError ? err : (toEgressKeyvaletError(err) ?? new KeyvaletError('upstream_unreachable', { detail: { upstream_error: (err as NodeJS.ErrnoException).code ?? 'unknown' } }))))
  upstream.once('connect', () => {
    upstream.setTimeout(0)
    upstream.removeAllListeners('error')
    handler.record({ ...base, decision: 'allow', reason: 'tunnel_allowed', status: 200, upstream_status: null, error: null, detail: { connect: opts.connect } }).then(
      () => {
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
        if (opts.head.length > 0) upstream.write(opts.head)
        const closeBoth = (): void => {
          socket.destroy()
          upstream.destroy()
        }
        socket.on('error', closeBoth).on('close', closeBoth)
        upstream.on('error', closeBoth).on('close', closeBoth)
        socket.pipe(upstream)
        upstream.pipe(socket)
      },
      () => {
        upstream.destroy()
        socket.destroy()
      },
    )
  })
}
