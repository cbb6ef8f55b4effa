import { connect, type Socket } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'

/**
 * HTTP/1.1 written by hand, for requests no library will send as they are (arbitrary hop-by-hop
 * headers, broken framing, headers fed a few bytes at a time). Every wait is bounded.
 */

/** Opens a TCP connection to 127.0.0.1:port (from `localAddress`, another loopback address, when given). */
export function openSocket(port: number, localAddress?: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', ...(localAddress === undefined ? {} : { localAddress }) }, () => {
      socket.off('error', reject)
      resolve(socket)
    })
    socket.once('error', reject)
  })
}

/**
 * CONNECT through keyvalet's forward listener and a TLS handshake with its interception leaf, so
 * that the returned socket speaks HTTP inside an intercepted tunnel.
 */
export async function openTunnel(opts: { proxyPort: number; authority: string; proxyAuthorization: string; ca: string; servername?: string; alpn?: string[] }): Promise<TLSSocket> {
  const socket = await openSocket(opts.proxyPort)
  const head = await new Promise<string>((resolve, reject) => {
    socket.write(`CONNECT ${opts.authority} HTTP/1.1\r\nHost: ${opts.authority}\r\nProxy-Authorization: ${opts.proxyAuthorization}\r\n\r\n`)
    socket.once('data', (chunk: Buffer) => resolve(chunk.toString('latin1')))
    socket.once('error', reject)
    socket.setTimeout(5000, () => socket.destroy(new Error('no answer to CONNECT')))
  })
  socket.setTimeout(0)
  if (!/^HTTP\/1\.1 200 /.test(head)) {
    socket.destroy()
    throw new Error(`CONNECT refused: ${head.split('\r\n')[0]}`)
  }
  const servername = opts.servername ?? opts.authority.replace(/:\d+$/, '')
  return new Promise((resolve, reject) => {
    const tls = tlsConnect({ socket, servername, ca: opts.ca, ...(opts.alpn === undefined ? {} : { ALPNProtocols: opts.alpn }) }, () => {
      tls.off('error', reject)
      resolve(tls)
    })
    tls.once('error', reject)
  })
}

/**
 * Writes `text` (in `chunk`-byte pieces, `gapMs` apart, when given) and reads until the peer closes,
 * a whole response with a Content-Length has arrived (then this side closes), or `timeoutMs` passes.
 */
export async function exchange(socket: Socket | TLSSocket, text: string | Buffer, opts: { chunk?: number; gapMs?: number; timeoutMs?: number } = {}): Promise<string> {
  const received: Buffer[] = []
  const done = new Promise<void>((resolve) => {
    socket.on('data', (c: Buffer) => {
      received.push(c)
      if (complete(Buffer.concat(received).toString('latin1'))) {
        socket.destroy()
        resolve()
      }
    })
    socket.on('close', () => resolve())
    socket.on('error', () => resolve())
  })
  const timer = setTimeout(() => socket.destroy(), opts.timeoutMs ?? 5000)
  const bytes = Buffer.from(text)
  const size = opts.chunk ?? bytes.length
  for (let at = 0; at < bytes.length && !socket.destroyed && socket.writable; at += size) {
    socket.write(bytes.subarray(at, at + size))
    if (opts.gapMs !== undefined) await new Promise((r) => setTimeout(r, opts.gapMs))
  }
  await done
  clearTimeout(timer)
  return Buffer.concat(received).toString('latin1')
}

/** Whether `text` holds a final (non-1xx) response head and its whole Content-Length body. */
function complete(text: string): boolean {
  let rest = text
  for (;;) {
    const end = rest.indexOf('\r\n\r\n')
    if (end === -1) return false
    const head = rest.slice(0, end)
    if (/^HTTP\/1\.1 1\d\d /.test(head)) {
      rest = rest.slice(end + 4)
      continue
    }
    const length = /\r\ncontent-length: *(\d+)/i.exec(head)?.[1]
    return length !== undefined && Buffer.byteLength(rest.slice(end + 4), 'latin1') >= Number(length)
  }
}

/** Status, lower-case headers and body of one response written by keyvalet. */
export function parseResponse(text: string): { status: number; headers: Record<string, string>; body: string } {
  const end = text.indexOf('\r\n\r\n')
  const head = end === -1 ? text : text.slice(0, end)
  const [statusLine = '', ...lines] = head.split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  return { status: Number(statusLine.split(' ')[1] ?? 0), headers, body: end === -1 ? '' : text.slice(end + 4) }
}
