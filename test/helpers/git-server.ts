import { spawn } from 'node:child_process'
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import { createServer, type Server } from 'node:https'
import { join } from 'node:path'

export interface GitRequest {
  readonly method: string
  readonly url: string
  readonly headers: IncomingHttpHeaders
  /** The status this server answered with. */
  status: number
}

export interface GitServer {
  readonly port: number
  /** Every request that reached the server, in arrival order (also the refused ones). */
  readonly received: GitRequest[]
  close(): Promise<void>
}

/**
 * A real smart-HTTP git server over HTTPS on 127.0.0.1:0: each request runs git's own CGI,
 * `git http-backend`, with the CGI environment (RFC 3875) built from the request, the request body
 * piped to its stdin and its response (a CGI head — `Status:` and headers — then the body) relayed.
 * Only `Authorization: Basic <username>:<password>` with exactly the given pair gets through;
 * anything else is answered 401 with `WWW-Authenticate: Basic`. The authenticated user becomes
 * REMOTE_USER, which is what lets http-backend accept pushes (git-receive-pack). With `authorize`,
 * that function decides instead (200 lets the request through; 401 or 403 is answered as GitHub does).
 */
export async function startGitServer(opts: {
  tls: { key: string; cert: string }
  projectRoot: string
  username: string
  password: string
  execPath: string
  authorize?: (req: IncomingMessage) => 200 | 401 | 403
}): Promise<GitServer> {
  const received: GitRequest[] = []
  const expected = `Basic ${Buffer.from(`${opts.username}:${opts.password}`).toString('base64')}`
  const backend = join(opts.execPath, 'git-http-backend')

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const entry: GitRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, status: 0 }
    received.push(entry)
    const verdict = opts.authorize?.(req) ?? (req.headers.authorization === expected ? 200 : 401)
    if (verdict === 403) {
      entry.status = 403
      req.resume()
      res.writeHead(403, { 'content-type': 'text/plain' })
      res.end('Write access to repository not granted.\n')
      return
    }
    if (verdict !== 200) {
      entry.status = 401
      req.resume()
      res.writeHead(401, { 'www-authenticate': 'Basic realm="git"', 'content-type': 'text/plain' })
      res.end('authentication required\n')
      return
    }
    const url = new URL(req.url ?? '/', 'https://git.invalid')
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      GIT_PROJECT_ROOT: opts.projectRoot,
      GIT_HTTP_EXPORT_ALL: '1',
      GIT_CONFIG_NOSYSTEM: '1',
      HOME: opts.projectRoot,
      GATEWAY_INTERFACE: 'CGI/1.1',
      SERVER_PROTOCOL: `HTTP/${req.httpVersion}`,
      REQUEST_METHOD: req.method ?? 'GET',
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.replace(/^\?/, ''),
      REMOTE_USER: opts.username,
      REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
      AUTH_TYPE: 'Basic',
    }
    const type = req.headers['content-type']
    if (type !== undefined) env.CONTENT_TYPE = type
    const length = req.headers['content-length']
    if (length !== undefined) env.CONTENT_LENGTH = length
    const encoding = req.headers['content-encoding']
    if (encoding !== undefined) env.HTTP_CONTENT_ENCODING = encoding
    const protocol = req.headers['git-protocol']
    if (typeof protocol === 'string') env.HTTP_GIT_PROTOCOL = protocol

    const child = spawn(backend, [], { env, stdio: ['pipe', 'pipe', 'pipe'] })
    const killer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    child.on('close', () => clearTimeout(killer))
    let stderr = ''
    child.stderr.on('data', (c: Buffer) => { if (stderr.length < 10_000) stderr += c.toString() })
    child.on('error', (err) => {
      entry.status = 500
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' })
      res.end(`cannot run git http-backend: ${err.message}\n`)
    })
    req.pipe(child.stdin)
    child.stdin.on('error', () => {})

    // The CGI head ends at the first blank line (CRLF or LF); the rest is the body.
    let head = Buffer.alloc(0)
    let headDone = false
    child.stdout.on('data', (chunk: Buffer) => {
      if (headDone) return void res.write(chunk)
      head = Buffer.concat([head, chunk])
      const text = head.toString('latin1')
      const m = /\r?\n\r?\n/.exec(text)
      if (m === null) {
        if (head.length > 64 * 1024) child.kill('SIGKILL')
        return
      }
      headDone = true
      let status = 200
      const headers: Record<string, string> = {}
      for (const line of text.slice(0, m.index).split(/\r?\n/)) {
        const colon = line.indexOf(':')
        if (colon === -1) continue
        const name = line.slice(0, colon).trim().toLowerCase()
        const value = line.slice(colon + 1).trim()
        if (name === 'status') status = Number.parseInt(value, 10)
        else headers[name] = value
      }
      entry.status = status
      res.writeHead(status, headers)
      const rest = head.subarray(Buffer.byteLength(text.slice(0, m.index + m[0].length), 'latin1'))
      if (rest.length > 0) res.write(rest)
    })
    child.stdout.on('end', () => {
      if (!headDone) {
        entry.status = 502
        res.writeHead(502, { 'content-type': 'text/plain' })
        res.end(`git http-backend wrote no CGI head: ${stderr}\n`)
        return
      }
      res.end()
    })
  }

  const server: Server = createServer(opts.tls, onRequest)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('git server has no address')
  return {
    port: address.port,
    received,
    close: () => new Promise((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  }
}
