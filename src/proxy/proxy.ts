import type { Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { KeyvaletError } from '../errors.ts'
import { LeafCache } from '../tls/leaf-cache.ts'
import { loadOrCreateCa } from '../tls/ca-store.ts'
import { createForwardServer } from './forward-proxy.ts'
import { createGatewayServer } from './gateway.ts'
import { createHandler, type HandlerDeps } from './handler.ts'

export type { AuditSink } from './handler.ts'
export type ProxyDeps = HandlerDeps

/** How long shutdown waits for the closing records of what it cut. */
const CUT_RECORDS_MS = 5_000

export interface ListeningAddresses {
  /** http://host:port of the gateway listener. */
  readonly url: string
  readonly host: string
  readonly port: number
  /** http://host:port of the forward-proxy listener, when configured. */
  readonly forwardUrl: string | undefined
  /** keyvalet's interception CA certificate (PEM), when the forward proxy runs. */
  readonly caCertPem: string | undefined
}

export interface Proxy {
  listen(): Promise<ListeningAddresses>
  /**
   * Stops accepting, lets requests and streams in flight finish for up to `graceMs` (default
   * limits.shutdown_grace_ms), then cuts what is left — each writes its closing audit record
   * (shutting_down) — and closes every connection.
   */
  close(graceMs?: number): Promise<void>
}

/** keyvalet's listeners over one shared pipeline: `createProxy(deps)` → `listen()` → `close()`. */
export function createProxy(deps: ProxyDeps): Proxy {
  const handler = createHandler(deps)
  // Every accepted socket still open, including upgraded and CONNECT sockets (which http.Server
  // stops tracking), so that shutdown leaves none behind.
  const sockets = new Set<Socket>()
  const track = (server: Server): Server => server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  const gateway = track(createGatewayServer(handler, deps.config.limits.idleTimeoutMs))
  let forward: Server | undefined
  return {
    async listen() {
      await handler.upstreams.warm(deps.config.policy.connectors.values())
      // Everything that can fail comes before the first listener opens: no half-started keyvalet.
      const ca = deps.config.forward === undefined ? undefined : (await loadOrCreateCa(deps.vault)).ca
      const address = await listenOn(gateway, deps.config.gateway)
      let forwardUrl: string | undefined
      if (ca !== undefined && deps.config.forward !== undefined) {
        forward = track(createForwardServer({ handler, sessions: deps.sessions, leaves: new LeafCache({ ca }), config: deps.config }))
        try {
          forwardUrl = urlOf(await listenOn(forward, deps.config.forward))
        } catch (err) {
          await closeNow(gateway)
          throw err
        }
      }
      return { ...address, url: urlOf(address), forwardUrl, caCertPem: ca?.certPem }
    },
    async close(graceMs = deps.config.limits.shutdownGraceMs) {
      const listening = [gateway, forward].filter((server): server is Server => server?.listening === true)
      const closed = listening.map((server) => new Promise<void>((resolve) => server.close(() => resolve())))
      for (const server of listening) server.closeIdleConnections()
      await handler.inFlight.drained(graceMs)
      await handler.inFlight.cut(new KeyvaletError('shutting_down', { detail: { why: 'shutdown_grace_ended' } }), CUT_RECORDS_MS)
      handler.inFlight.close()
      for (const socket of sockets) socket.destroy()
      await Promise.all(closed)
      await handler.upstreams.destroy()
      await handler.sources.close()
    },
  }
}

function listenOn(server: Server, at: { host: string; port: number }): Promise<{ host: string; port: number; family: string }> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(at.port, at.host, () => {
      const address = server.address() as AddressInfo | null
      if (address === null) return reject(new Error('listener has no address'))
      resolve({ host: address.address, port: address.port, family: address.family })
    })
  })
}

function urlOf(address: { host: string; port: number; family: string }): string {
  return `http://${address.family === 'IPv6' ? `[${address.host}]` : address.host}:${address.port}`
}

/** Closes a listener and its connections at once (a start that failed half-way). */
function closeNow(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
}
