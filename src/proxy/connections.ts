import type { Server, ServerOptions } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Config } from '../config/load.ts'

/** Node's http.Server options every listener shares. */
export function serverOptions(limits: Config['limits']): ServerOptions {
  return {
    // The head must arrive in time (slow-header clients); a body may take as long as it keeps
    // moving, which the idle timeout bounds. Node's requestTimeout would cut long uploads.
    requestTimeout: 0,
    headersTimeout: limits.request_timeout_ms,
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.request_timeout_ms / 4))),
    keepAliveTimeout: 5_000,
    maxHeaderSize: 32 * 1024,
    insecureHTTPParser: false,
    requireHostHeader: true,
  }
}

/**
 * The listeners' connections on which nothing moved for `limits.idle_timeout_ms`. With a listener
 * watched, node leaves timed-out sockets to keyvalet: an idle one is closed; one with a request in
 * the pipeline is ended by that request (answered 504 idle_timeout when it still can, cut
 * otherwise; audited idle_timeout either way), never reset unexplained.
 */
export class IdleConnections {
  readonly #timeoutMs: number
  /** Sockets with a request in the pipeline → how that request ends when its connection goes idle: it answers and audits itself. */
  readonly #busy = new WeakMap<object, () => void>()

  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs
  }

  /** A request entered the pipeline on `socket`; `endWhenIdle` ends it if the connection goes idle. */
  busy(socket: Duplex, endWhenIdle: () => void): void {
    this.#busy.set(socket, endWhenIdle)
  }

  /** That request is over (a later request on the socket may have replaced it). */
  free(socket: Duplex, endWhenIdle: () => void): void {
    if (this.#busy.get(socket) === endWhenIdle) this.#busy.delete(socket)
  }

  isBusy(socket: Duplex): boolean {
    return this.#busy.has(socket)
  }

  watch(server: Server): void {
    server.timeout = this.#timeoutMs
    server.on('timeout', (socket: Duplex) => this.expire(socket))
  }

  /** Nothing moved on `socket` (a connection, or an HTTP/2 stream's stand-in) for the timeout: its request ends itself, or it is closed. */
  expire(socket: Duplex): void {
    const endRequest = this.#busy.get(socket)
    if (endRequest === undefined) socket.destroy()
    else endRequest()
  }
}
