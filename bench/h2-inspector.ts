/**
 * `node bench/h2-inspector.ts`: what the HTTP/2 header inspector costs per request, apart from
 * everything else keyvalet does. A TLS server in a child process answers every stream with a
 * small body through node:http2's core stream API (as keyvalet answers), fed one of three ways, as
 * src/proxy/h2-listener.ts could feed it:
 *   native   the TLS socket itself (nghttp2 reads it natively: no inspection possible)
 *   pass     through inspectedSocket with nothing read (Node's JS stream path alone)
 *   inspect  through inspectedSocket with H2HeaderInspector reading every byte (what keyvalet does)
 * and, for scale, `http1`: the same answers over HTTPS/1.1 (node:https), H2_STREAMS keep-alive
 * connections, which is what HTTP/2 interception is compared with (issue 17's target).
 * A client in another child process keeps H2_STREAMS (default 64) streams in flight on one
 * connection (http1: one request in flight on each of H2_STREAMS connections) for H2_SECONDS (default 5) after a 1 s warm-up, each request with headers like an
 * SDK's. Modes alternate over H2_ROUNDS (default 5) rounds; reports the server's CPU µs per
 * request (process.cpuUsage, user + system) per round, and each mode's median with its ratio to
 * http1. keyvalet's own cost per intercepted request (~170-190 µs in `npm run bench`) is the
 * scale to read these against. With H2_PROF=DIR the server runs with --cpu-prof and writes one
 * profile per round into DIR.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { connect, constants, createServer } from 'node:http2'
import { createServer as createTlsServer, type TLSSocket } from 'node:tls'
import { Agent, createServer as createHttpsServer, request as httpsRequest } from 'node:https'
import { makeTestPki } from '../test/helpers/tls.ts'
import { H2HeaderInspector } from '../src/proxy/h2/h2-header-inspector.ts'
import { inspectedSocket } from '../src/proxy/h2/inspected-socket.ts'

type Mode = 'http1' | 'native' | 'pass' | 'inspect'
const MODES: readonly Mode[] = ['http1', 'native', 'pass', 'inspect']
const STREAMS = Number(process.env.H2_STREAMS ?? 64)
const SECONDS = Number(process.env.H2_SECONDS ?? 5)
const ROUNDS = Number(process.env.H2_ROUNDS ?? 5)
const BODY = JSON.stringify({ id: 1, name: 'item', tags: ['a', 'b'], note: 'x'.repeat(64) })

interface Pki { caCert: string; key: string; cert: string }
type ToServer = { mode: Mode; pki: Pki }
type ToParent = { port: number } | { cpuUs: number; userUs: number }
type ToClient = { port: number; ca: string; mode: Mode }

function serve(): void {
  process.once('message', ({ mode, pki }: ToServer) => {
    const answer = (_req: unknown, res: { writeHead(status: number, headers: Record<string, string>): unknown; end(body: string): unknown }): void => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(BODY)
    }
    // HTTP/2 answers through the core stream API, as keyvalet's listener does (h2-listener.ts): no
    // compatibility objects, the head and the body's one DATA frame with END_STREAM.
    const h2 = createServer({})
    h2.on('stream', (stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/json' })
      stream.end(BODY)
    })
    const tls = mode === 'http1' ? createHttpsServer({ key: pki.key, cert: pki.cert }, answer) : createTlsServer({ key: pki.key, cert: pki.cert, ALPNProtocols: ['h2'], noDelay: true }, (socket: TLSSocket) => {
      if (mode === 'native') return void h2.emit('connection', socket)
      const inspector = new H2HeaderInspector({ headerTableSize: 4096, maxFrameSize: 16_384, maxHeaderListBytes: 65_536, maxHeaderListPairs: 128 })
      h2.emit('connection', inspectedSocket(socket, mode === 'inspect' ? (chunk) => inspector.inspect(chunk) : () => {}))
    })
    tls.listen(0, '127.0.0.1', () => {
      const address = tls.address()
      send({ port: typeof address === 'object' && address !== null ? address.port : 0 })
    })
    // Asked for its CPU: the client is about to start (reset) or has stopped (read).
    let since = process.cpuUsage()
    process.on('message', (m: unknown) => {
      if (m === 'mark') since = process.cpuUsage()
      // Exits rather than being killed, so that a --cpu-prof profile (H2_PROF) is written.
      if (m === 'exit') process.exit(0)
      if (m === 'read') {
        const used = process.cpuUsage(since)
        send({ cpuUs: used.user + used.system, userUs: used.user })
      }
    })
  })
}

function send(message: ToParent | { answers: number }): void {
  process.send?.(message)
}

const HEADERS = { accept: 'application/json', 'user-agent': 'bench-sdk/1.0 node' }

/** The client: STREAMS requests in flight, each followed by another as it ends; counts answers between the parent's 'count' and 'stop'. */
function drive(): void {
  process.once('message', ({ port, ca, mode }: ToClient) => {
    let counting = false
    let answers = 0
    let stopped = false
    const again = (): void => {
      if (!stopped) send1()
    }
    const answered = (): void => {
      if (counting) answers++
      again()
    }
    // HTTP/2: STREAMS streams on one connection; http1: one request on each of STREAMS kept-alive connections.
    const session = mode === 'http1' ? undefined : connect(`https://localhost:${port}`, { ca, servername: 'localhost' })
    const agent = mode === 'http1' ? new Agent({ keepAlive: true, maxSockets: STREAMS, ca, servername: 'localhost' }) : undefined
    const send1 = (): void => {
      const id = String(Math.random()).slice(2)
      if (session !== undefined) {
        const stream = session.request({ [constants.HTTP2_HEADER_PATH]: '/items/1', ...HEADERS, 'x-request-id': id })
        stream.on('data', () => {}).on('end', answered).on('error', again)
        stream.end()
        return
      }
      const req = httpsRequest({ host: '127.0.0.1', port, path: '/items/1', agent, headers: { ...HEADERS, 'x-request-id': id } }, (res) => {
        res.on('data', () => {}).on('end', answered)
      })
      req.on('error', again).end()
    }
    for (let i = 0; i < STREAMS; i++) send1()
    process.on('message', (m: unknown) => {
      if (m === 'count') {
        counting = true
        answers = 0
      }
      if (m === 'stop') {
        stopped = true
        send({ answers })
        session?.close()
        agent?.destroy()
        setTimeout(() => process.exit(0), 100).unref()
      }
    })
  })
}

function once<T>(child: ChildProcess): Promise<T> {
  return new Promise((resolve) => child.once('message', (m) => resolve(m as T)))
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function round(mode: Mode, pki: Pki): Promise<number> {
  const server = fork(import.meta.filename, ['server'], process.env.H2_PROF === undefined ? {} : { execArgv: [...process.execArgv, '--cpu-prof', `--cpu-prof-dir=${process.env.H2_PROF}`] })
  const client = fork(import.meta.filename, ['client'])
  try {
    server.send({ mode, pki } satisfies ToServer)
    const { port } = await once<{ port: number }>(server)
    client.send({ port, ca: pki.caCert, mode } satisfies ToClient)
    await sleep(1000)
    server.send('mark')
    client.send('count')
    await sleep(SECONDS * 1000)
    const cpu = once<{ cpuUs: number; userUs: number }>(server)
    server.send('read')
    const { cpuUs, userUs } = await cpu
    const answered = once<{ answers: number }>(client)
    client.send('stop')
    const { answers } = await answered
    if (answers === 0) throw new Error(`${mode}: no answers`)
    process.stderr.write(`[h2-inspector]   ${mode}: ${Math.round(answers / SECONDS)} req/s, server CPU ${Math.round(cpuUs / SECONDS / 1e4)} % (user ${Math.round(userUs / SECONDS / 1e4)} %)\n`)
    return cpuUs / answers
  } finally {
    client.kill()
    const exited = new Promise((resolve) => server.once('exit', resolve))
    if (server.connected) server.send('exit')
    await Promise.race([exited, sleep(5000)])
    server.kill()
  }
}

async function main(): Promise<void> {
  const pki = makeTestPki()
  const perMode = new Map<Mode, number[]>(MODES.map((m) => [m, []]))
  for (let r = 0; r < ROUNDS; r++) {
    const line: string[] = []
    for (const mode of MODES) {
      const us = await round(mode, pki)
      perMode.get(mode)?.push(us)
      line.push(`${mode} ${us.toFixed(1)}`)
    }
    process.stderr.write(`[h2-inspector] round ${r + 1}/${ROUNDS}: server CPU µs per request: ${line.join(', ')}\n`)
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[(xs.length - 1) >> 1] ?? Number.NaN
  const base = median(perMode.get('http1') ?? [])
  console.log(`server CPU µs per request, HTTP/2: ${STREAMS} streams on one TLS connection; http1: ${STREAMS} connections; ${ROUNDS} rounds of ${SECONDS} s, median:`)
  for (const mode of MODES) {
    const m = median(perMode.get(mode) ?? [])
    console.log(`  ${mode.padEnd(8)} ${m.toFixed(1).padStart(6)} µs  (${(m / base).toFixed(2)}× http1, ${m - base >= 0 ? '+' : ''}${(m - base).toFixed(1)} µs)`)
  }
}

const role = process.argv[2]
if (role === 'server') serve()
else if (role === 'client') drive()
else await main()
