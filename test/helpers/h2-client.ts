import { connect, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2'
import { openTunnel } from './raw-http.ts'

/** An HTTP/2 session (Node's client) inside a tunnel keyvalet intercepts: CONNECT, then TLS with ALPN h2 only. */
export async function h2Session(opts: { proxyPort: number; authority: string; proxyAuthorization: string; ca: string; servername?: string }): Promise<ClientHttp2Session> {
  const tls = await openTunnel({ ...opts, alpn: ['h2'] })
  if (tls.alpnProtocol !== 'h2') {
    tls.destroy()
    throw new Error(`the tunnel chose ${String(tls.alpnProtocol)}, not h2`)
  }
  const session = connect(`https://${opts.authority}`, { createConnection: () => tls })
  session.on('error', () => {})
  return session
}

export interface H2Answer {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: string
  readonly trailers: IncomingHttpHeaders
  /** The RST_STREAM code when the stream was reset instead of ended (0 when it ended). */
  readonly rstCode: number
}

/** One request on the session; resolves once the stream closes (ended or reset), within `timeoutMs`. */
export function h2Request(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: string | Buffer, timeoutMs = 10_000): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined })
    let status = 0
    let head: IncomingHttpHeaders = {}
    let trailers: IncomingHttpHeaders = {}
    const chunks: Buffer[] = []
    const timer = setTimeout(() => {
      stream.close()
      reject(new Error('no answer on the stream in time'))
    }, timeoutMs)
    stream.on('response', (h) => {
      head = h
      status = Number(h[':status'])
    })
    stream.on('trailers', (t) => { trailers = t })
    stream.on('data', (c: Buffer) => chunks.push(c))
    stream.on('error', () => {})
    stream.on('close', () => {
      clearTimeout(timer)
      resolve({ status, headers: head, body: Buffer.concat(chunks).toString('utf8'), trailers, rstCode: stream.rstCode ?? 0 })
    })
    if (body !== undefined) stream.end(body)
  })
}
