import { connect } from 'node:net'
import type { Duplex } from 'node:stream'
import { guardedConnectOptions } from '../egress/connect.ts'
import { toEgressKeyvaletError } from '../egress/egress-error.ts'
import { KeyvaletError, toKeyvaletError } from '../errors.ts'
import type { Session } from '../model/session.ts'
import { outsideFields } from './audit-fields.ts'
import type { Handler } from './handler.ts'
import { writeRawError } from './error-reply.ts'

/**
 * A pass-through tunnel (a `tunnels:` destination): no interception and no credential ever. The
 * upstream is dialed through the egress guard; the record is written once the upstream accepted,
 * before the sandbox gets its 200; then bytes are piped both ways until either side closes.
 */
export function openTunnel(opts: { socket: Duplex; head: Buffer; host: string; port: number; connect: string; session: Session; handler: Handler; timeoutMs: number; allow: readonly string[] }): void {
  const { socket, handler, session } = opts
  const who = { session: session.id, agent: session.agent, user: session.user, workspace: session.workspace, task: session.task }
  const refuse = (error: KeyvaletError): void =>
    handler.refuse(socket, error, { mode: 'forward', method: 'CONNECT', fields: { ...who, decision: error.status >= 500 ? 'error' : 'deny', detail: { connect: opts.connect, ...error.detail } } })
  let destination: ReturnType<typeof guardedConnectOptions>
  try {
    // Public addresses only, unless the tunnel entry allows a range (local tests).
    destination = guardedConnectOptions(opts.host, { allowAddresses: opts.allow, resolver: handler.resolver })
  } catch (err) {
    return refuse(err instanceof KeyvaletError ? err : new KeyvaletError('upstream_host_invalid'))
  }
  const upstream = connect({ ...destination, port: opts.port })
  upstream.setTimeout(opts.timeoutMs, () => upstream.destroy(new KeyvaletError('upstream_timeout')))
  upstream.once('error', (err) => refuse(err instanceof KeyvaletError ? err : (toEgressKeyvaletError(err) ?? new KeyvaletError('upstream_unreachable', { detail: { upstream_error: (err as NodeJS.ErrnoException).code ?? 'unknown' } }))))
  upstream.once('connect', () => {
    upstream.setTimeout(0)
    upstream.removeAllListeners('error')
    const allowed = outsideFields(handler.nextId(), 'CONNECT', { decision: 'allow', reason: 'tunnel_allowed', status: 200, error: null })
    handler.record({ ...allowed, ...who, mode: 'forward', detail: { connect: opts.connect } }).then(
      () => {
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
        if (opts.head.length > 0) upstream.write(opts.head)
        let open = true
        handler.tunnels.passthrough++
        const closeBoth = (): void => {
          socket.destroy()
          upstream.destroy()
          handler.inFlight.untrack(flight)
          if (open) handler.tunnels.passthrough--
          open = false
        }
        // Shutdown lets it run through the grace period like a request, then cuts it.
        const flight = { cut: closeBoth }
        handler.inFlight.track(flight)
        socket.on('error', closeBoth).on('close', closeBoth)
        upstream.on('error', closeBoth).on('close', closeBoth)
        socket.pipe(upstream)
        upstream.pipe(socket)
      },
      (err: unknown) => {
        upstream.destroy()
        writeRawError(socket, toKeyvaletError(err), allowed.request_id, 'forward')
      },
    )
  })
}
