import type { Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { Config } from '../config/load.ts'
import { KeyvaletError, OperatorError } from '../errors.ts'
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

/** What the proxy holds now, read by the metrics and the readiness check. */
export interface ProxyStats {
  /** Every listener that should be open is. */
  readonly listening: boolean
  /** Client connections open, per listener (CONNECT and upgraded sockets included). */
  readonly connections: { readonly gateway: number; readonly forward: number }
  /** Requests, WebSockets and pass-through tunnels in flight. */
  readonly inFlight: number
  readonly tunnels: { readonly passthrough: number; readonly intercepted: number }
  /** Leaf certificates minted for intercepted hosts since start. */
  readonly leavesMinted: number
  /** Token endpoint calls by credential source kind. */
  readonly tokenFetches: ReadonlyMap<string, { readonly ok: number; readonly failed: number }>
}

export interface Proxy {
  listen(): Promise<ListeningAddresses>
  stats(): ProxyStats
  /**
   * Puts a configuration in force for every request that starts from now on; requests in flight
   * finish under the one they started with. Throws, changing nothing, if it cannot be compiled.
   * The caller (config/reload.ts) has checked that it changes only what a reload may change.
   */
  apply(config: Config): void
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
  // stops tracking), so that shutdown leaves none behind; and how many each listener holds.
  const sockets = new Set<Socket>()
  const open = { gateway: 0, forward: 0 }
  const track = (server: Server, name: keyof typeof open): Server => server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    open[name]++
    socket.once('close', () => {
      sockets.delete(socket)
      open[name]--
    })
  })
  const gateway = track(createGatewayServer(handler), 'gateway')
  let forward: Server | undefined
  let leaves: LeafCache | undefined
  let started = false
  return {
    stats: () => ({
      listening: started && gateway.listening && (deps.config.forward === undefined || forward?.listening === true),
      connections: { ...open },
      inFlight: handler.inFlight.size,
      tunnels: { ...handler.tunnels },
      leavesMinted: leaves?.minted ?? 0,
      tokenFetches: handler.sources.tokenFetches,
    }),
    async listen() {
      await handler.upstreams.warm(deps.config.policy.connectors.values())
      // Everything that can fail comes before the first listener opens: no half-started keyvalet.
      const ca = deps.config.forward === undefined ? undefined : (await loadOrCreateCa(deps.vault)).ca
      const address = await listenOn(gateway, deps.config.gateway, 'gateway')
      let forwardUrl: string | undefined
      if (ca !== undefined && deps.config.forward !== undefined) {
        leaves = new LeafCache({ ca })
        forward = track(createForwardServer({ handler, sessions: deps.sessions, leaves }), 'forward')
        try {
          forwardUrl = urlOf(await listenOn(forward, deps.config.forward, 'forward'))
        } catch (err) {
          await closeNow(gateway)
          throw err
        }
      }
      started = true
      return { ...address, url: urlOf(address), forwardUrl, caCertPem: ca?.certPem }
    },
    apply: (config) => handler.apply(config),
    async close(graceMs = deps.config.limits.shutdown_grace_ms) {
      const listening = [gateway, forward].filter((server): server is Server => server?.listening === true)
      const closed = listening.map((server) => new Promise<void>((resolve) => server.close(() => resolve())))
      for (const server of listening) server.closeIdleConnections()
      await handler.inFlight.drained(graceMs)
      await handler.inFlight.cut(new KeyvaletError('shutting_down', { detail: { why: 'shutdown_grace_ended' } }), CUT_RECORDS_MS)
      handler.inFlight.close()
      for (const socket of sockets) socket.destroy()
      await Promise.all(closed)
      await handler.summarise() // what the anonymous budget still holds, before the audit log closes
      await handler.upstreams.destroy()
      await handler.sources.close()
    },
  }
}

/** Why a listener could not open, for the operator: which one, where, and what to change. */
const LISTEN_FAILURES: Record<string, string> = {
  EADDRINUSE: 'the address is already in use',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'no interface of this machine has that address',
  ENOTFOUND: 'the host name does not resolve',
}

function listenOn(server: Server, at: { host: string; port: number }, name: 'gateway' | 'forward'): Promise<{ host: string; port: number; family: string }> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const why = LISTEN_FAILURES[err.code ?? '']
      if (why === undefined) return reject(err)
      const where = `${at.host.includes(':') ? `[${at.host}]` : at.host}:${at.port}`
      const field = name === 'gateway' ? 'listen.gateway' : 'listen.forward'
      const change = `change ${field} in the configuration`
      const hint = err.code === 'EADDRINUSE' ? `stop what holds it (ss -ltnp 'sport = :${at.port}') or ${change}` : change
      reject(new OperatorError(`the ${name === 'gateway' ? 'gateway' : 'forward proxy'} cannot listen on ${where}: ${why} (${err.code})`, hint, { cause: err }))
    })
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
