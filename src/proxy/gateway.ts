import type { IncomingMessage, Server } from 'node:http'
import { createServer } from '../node-http.ts'
import type { Socket } from 'node:net'
import { KeyvaletError } from '../errors.ts'
import type { Handler } from './handler.ts'
import { isJwksRequest, serveJwks } from './jwks.ts'
import { upgradeProtocol } from './websocket.ts'

/**
 * The gateway listener: `http://keyvalet:PORT/<connector>/<path>` with the task key where the real
 * credential would go (an SDK's base URL and API key). Everything goes to the shared handler.
 */
export function createGatewayServer(handler: Handler): Server {
  const server = createServer(handler.serverOptions, (req, res) => {
    const jwks = handler.generation().jwks
    if (jwks !== undefined && isJwksRequest(req)) return void serveJwks(jwks, req, res, handler.log, handler.nextId())
    handler.request(handler.newContext(req, { mode: 'gateway' }), res).catch((err: unknown) => {
      handler.log.error('unhandled request failure', { error: String(err) })
      res.destroy()
    })
  })
  handler.closeIdle(server)
  // The gateway is not a forward proxy: CONNECT gets a clear refusal instead of a closed socket.
  server.on('connect', (_req: IncomingMessage, socket: Socket) => {
    socket.on('error', () => socket.destroy()) // a reset must cost the socket, never the process
    handler.refuse(socket, new KeyvaletError('method_refused', { message: 'CONNECT is not accepted on the gateway listener.' }), { mode: 'gateway', method: 'CONNECT' })
  })
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => socket.destroy())
    const protocol = upgradeProtocol(req)
    if (protocol !== 'websocket') {
      return handler.refuse(socket, new KeyvaletError('upgrade_refused', { detail: { protocol: protocol.slice(0, 40) } }), { mode: 'gateway', method: req.method ?? '' })
    }
    handler.upgrade(handler.newContext(req, { mode: 'gateway', upgrade: protocol }), socket, head).catch((err: unknown) => {
      handler.log.error('unhandled upgrade failure', { error: String(err) })
      socket.destroy()
    })
  })
  // Requests the parser rejects never become requests; they are still answered and audited.
  server.on('clientError', handler.onClientError('gateway'))
  server.on('checkExpectation', handler.onUnsupportedExpectation('gateway'))
  return server
}
