/**
 * `node bench/sse-upstream.ts [STREAMS]`: what one open event stream costs a proxy's upstream side,
 * by how it reaches the upstream: undici (keyvalet's client) holding STREAMS (default 4000) event
 * streams open to a local server over HTTP/1.1 in cleartext (one connection each, as the sse phase
 * of `npm run bench` does), over HTTP/1.1 with TLS (one connection each, what an https upstream
 * costs), and over HTTP/2 with TLS (every stream on one connection). Each client is a fresh process;
 * printed: its RSS and heap growth per stream once every stream had its first event (after a full
 * GC). The server is a process of its own. Measurement tool, not part of `npm run bench`.
 */
import { fork } from 'node:child_process'
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createSecureServer } from 'node:http2'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { Pool } from 'undici'
import { createCa, issueLeaf } from '../src/tls/certificate.ts'

const SELF = fileURLToPath(import.meta.url)
const MiB = 1024 * 1024
type Kind = 'h1' | 'h1-tls' | 'h2-tls'
interface Ports { h1: number; 'h1-tls': number; 'h2-tls': number; caPem: string }

const rss = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) * 1024

function serve(): void {
  const now = Date.now()
  const ca = createCa({ commonName: 'sse upstream bench CA', notBefore: new Date(now - 60_000), notAfter: new Date(now + 86_400_000) })
  const leaf = issueLeaf({ ca, host: '127.0.0.1', notBefore: new Date(now - 60_000), notAfter: new Date(now + 86_400_000) })
  const tls = { key: leaf.keyPem, cert: leaf.certPem }
  const events = (_req: IncomingMessage | unknown, res: ServerResponse | { writeHead: (s: number, h: object) => void; write: (s: string) => void }): void => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' })
    res.write('data: first\n\n')
  }
  const h1 = createHttpServer({ keepAliveTimeout: 600_000 }, events)
  const h1tls = createHttpsServer({ ...tls, keepAliveTimeout: 600_000 }, events)
  const h2 = createSecureServer({ ...tls, settings: { maxConcurrentStreams: 100_000 } }, events as never)
  const servers = [h1, h1tls, h2]
  let listening = 0
  for (const s of servers) s.listen(0, '127.0.0.1', () => {
    if (++listening < servers.length) return
    const port = (s2: { address(): unknown }): number => (s2.address() as AddressInfo).port
    process.send?.({ h1: port(h1), 'h1-tls': port(h1tls), 'h2-tls': port(h2), caPem: ca.certPem } satisfies Ports)
  })
}

async function client(kind: Kind, ports: Ports, streams: number): Promise<void> {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const tls = kind !== 'h1'
  const pool = new Pool(`${tls ? 'https' : 'http'}://127.0.0.1:${ports[kind]}`, {
    connections: kind === 'h2-tls' ? 1 : streams + 10, allowH2: kind === 'h2-tls', bodyTimeout: 0, connect: tls ? { ca: ports.caPem, rejectUnauthorized: true } : {},
    ...(kind === 'h2-tls' ? { maxConcurrentStreams: streams + 10 } : {}),
  } as Pool.Options)
  // One warm-up stream: the client's code and TLS set up before the baseline.
  const warm = await pool.request({ path: '/', method: 'GET' })
  for await (const _chunk of warm.body) break
  gc()
  const baseRss = rss()
  const baseHeap = process.memoryUsage().heapUsed
  const held: unknown[] = []
  let first = 0
  await Promise.all(Array.from({ length: streams }, async () => {
    const res = await pool.request({ path: '/', method: 'GET' })
    held.push(res)
    await new Promise<void>((resolve) => res.body.once('data', () => { first++; resolve() }))
  }))
  gc()
  await new Promise((r) => setTimeout(r, 500))
  gc()
  const perStream = (bytes: number): string => (bytes / first / 1024).toFixed(1)
  process.stdout.write(`${kind.padEnd(7)} ${first} streams: RSS +${((rss() - baseRss) / MiB).toFixed(1)} MiB = ${perStream(rss() - baseRss)} KiB per stream; heap used ${perStream(process.memoryUsage().heapUsed - baseHeap)} KiB per stream\n`)
  process.exit(0)
}

if (process.argv[2] === '--server') serve()
else if (process.argv[2] === '--client') {
  process.once('message', (m) => void client(process.argv[3] as Kind, m as Ports, Number(process.argv[4])))
} else {
  const streams = Number(process.argv[2] ?? 4000)
  const server = fork(SELF, ['--server'])
  const ports = await new Promise<Ports>((resolve) => server.once('message', (m) => resolve(m as Ports)))
  try {
    for (const kind of ['h1', 'h1-tls', 'h2-tls'] as const) {
      const c = fork(SELF, ['--client', kind, String(streams)])
      c.send(ports)
      await new Promise((resolve) => c.once('exit', resolve))
    }
  } finally {
    server.kill()
  }
}
