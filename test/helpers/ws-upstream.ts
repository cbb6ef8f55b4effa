import { createHash } from 'node:crypto'
import { createServer, type IncomingHttpHeaders, type IncomingMessage } from 'node:http'
import { createServer as createTlsServer } from 'node:https'
import type { Duplex } from 'node:stream'

/**
 * A minimal real WebSocket server (RFC 6455 handshake, unfragmented text frames up to 64 KiB)
 * that answers every text message with `echo: <message>` and records the upgrade requests.
 * `handshakeHeaders` adds header lines to its 101 (e.g. to echo what it received).
 */
export async function startWebSocketUpstream(opts: { tls?: { key: string; cert: string }; host?: string; handshakeHeaders?: (req: IncomingMessage) => Record<string, string> } = {}): Promise<{ url: string; port: number; upgrades: IncomingHttpHeaders[]; close(): Promise<void> }> {
  const upgrades: IncomingHttpHeaders[] = []
  const sockets = new Set<Duplex>()
  const reject = (_req: unknown, res: import('node:http').ServerResponse): void => void res.writeHead(426).end()
  const server = opts.tls === undefined ? createServer(reject) : createTlsServer(opts.tls, reject)
  server.on('upgrade', (req, socket: Duplex) => {
    upgrades.push(req.headers)
    sockets.add(socket)
    const accept = createHash('sha1').update(`${String(req.headers['sec-websocket-key'])}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64')
    const extra = Object.entries(opts.handshakeHeaders?.(req) ?? {}).map(([name, value]) => `${name}: ${value}\r\n`).join('')
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n${extra}\r\n`)
    let buffered = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk])
      for (;;) {
        const frame = readFrame(buffered)
        if (frame === undefined) return
        buffered = buffered.subarray(frame.size)
        if (frame.opcode === 0x8) return void socket.end(Buffer.from([0x88, 0x00]))
        if (frame.opcode === 0x1) socket.write(textFrame(`echo: ${frame.payload.toString('utf8')}`))
      }
    })
    socket.on('error', () => socket.destroy())
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no address')
  return {
    url: `${opts.tls === undefined ? 'http' : 'https'}://${opts.host ?? '127.0.0.1'}:${address.port}`,
    port: address.port,
    upgrades,
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy()
      server.close(() => resolve())
    }),
  }
}

function readFrame(buf: Buffer): { opcode: number; payload: Buffer; size: number } | undefined {
  if (buf.length < 2) return undefined
  const opcode = (buf[0] ?? 0) & 0x0f
  const masked = ((buf[1] ?? 0) & 0x80) !== 0
  let length = (buf[1] ?? 0) & 0x7f
  let at = 2
  if (length === 126) {
    if (buf.length < 4) return undefined
    length = buf.readUInt16BE(2)
    at = 4
  } else if (length === 127) {
    throw new Error('test server: frames over 64 KiB are not supported')
  }
  const mask = masked ? buf.subarray(at, at + 4) : undefined
  if (masked) at += 4
  if (buf.length < at + length) return undefined
  const payload = Buffer.from(buf.subarray(at, at + length))
  if (mask !== undefined) for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] ?? 0) ^ (mask[i % 4] ?? 0)
  return { opcode, payload, size: at + length }
}

function textFrame(text: string): Buffer {
  const payload = Buffer.from(text, 'utf8')
  const header = payload.length < 126 ? Buffer.from([0x81, payload.length]) : Buffer.from([0x81, 126, payload.length >> 8, payload.length & 0xff])
  return Buffer.concat([header, payload])
}
