/**
 * Phase grpc: what keyvalet adds to a gRPC unary call at low load. A grpc-js client calls a real
 * grpc-js server over TLS on loopback (demo.Echo/Say, test/helpers/grpc-server.ts), directly and
 * through keyvalet's forward listener (CONNECT, interception with h2 on both sides, the credential
 * injected as `authorization` metadata). Calls are sequential, one in flight at a time, direct and
 * proxied alternating so that both see the same machine; each channel is warmed up first.
 * keyvalet runs as `keyvalet start` in a process of its own, so its CPU per call is its own; its
 * node flags are the job's (BENCH_NODE_FLAGS, and --cpu-prof with BENCH_PROFILE=1: run.ts then
 * summarises the profile over the measured sequential calls, `measuredUs`). Then the same number of
 * calls through keyvalet with several in flight, for what a call costs when calls share keyvalet's work.
 * A worker of run.ts (runWorker: one GrpcJob in, one GrpcBenchResult out).
 */

import { randomBytes } from 'node:crypto'
import { subscribe } from 'node:diagnostics_channel'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import type { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import { cli } from '../test/helpers/cli.ts'
import { startChildKeyvalet, type ChildKeyvalet } from '../test/helpers/child-keyvalet.ts'
import { startDnsServer } from '../test/helpers/dns-server.ts'
import { EchoClient, startGrpcUpstream } from '../test/helpers/grpc-server.ts'
import { upstreamCertificate } from '../test/helpers/tls.ts'
import { cpuSeconds } from './rss.ts'
import { Samples, type LatencySummary } from './stats.ts'

export interface GrpcJob {
  readonly calls: number
  readonly warmup: number
  /** Calls in flight at once on the proxied channel in the second, concurrent measurement (same number of calls). */
  readonly concurrency: number
  /** Node flags for the keyvalet process (BENCH_NODE_FLAGS, and --cpu-prof with BENCH_PROFILE=1), in its NODE_OPTIONS. */
  readonly nodeFlags: readonly string[]
}

export interface GrpcBenchResult {
  readonly calls: number
  readonly warmup: number
  readonly direct: LatencySummary
  readonly keyvalet: LatencySummary
  /** keyvalet's user+system CPU over the measured calls, per call (µs); /proc ticks are 10 ms. */
  readonly keyvaletCpuUsPerCall: number
  /** The upstream's count of calls that carried the injected credential (every proxied one should). */
  readonly injected: number
  /**
   * Connections made during the measured calls: the client's to keyvalet's forward listener (each
   * a CONNECT tunnel and a TLS handshake with keyvalet), and those the upstream accepted (each a TLS
   * handshake and an HTTP/2 session of keyvalet's; the direct channel keeps its own one open).
   */
  readonly connectionsDuringCalls: { readonly tunnels: number; readonly upstream: number }
  /**
   * The same number of calls through keyvalet, `concurrency` in flight at once on the one channel
   * (after the sequential ones): what a call costs when keyvalet's per-wake-up and per-commit work
   * is shared by several calls (audit records committed together, frames of several streams per read).
   */
  readonly concurrent: { readonly concurrency: number; readonly callsPerS: number; readonly keyvaletCpuUsPerCall: number; readonly latency: LatencySummary }
  /** The measured calls' span on the monotonic clock (µs, as a .cpuprofile's timestamps), to summarise only them. */
  readonly measuredUs: { readonly from: number; readonly to: number }
}

const HOST = 'grpc.bench.test'
const SECRET = `grpc-bench-secret-${randomBytes(8).toString('hex')}`

type Unary = (request: unknown, callback: (err: grpc.ServiceError | null, value?: unknown) => void) => grpc.ClientUnaryCall

function say(client: grpc.Client): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint()
    const method = (client as grpc.Client & { Say: Unary }).Say
    method.call(client, { text: 'ping' }, (err) => (err === null ? resolve(Number(process.hrtime.bigint() - t0) / 1e6) : reject(err)))
  })
}

async function keyvaletProcess(dir: string, dnsAddress: string, upstreamPort: number, upstreamCaPem: string, nodeFlags: readonly string[]): Promise<{ kv: ChildKeyvalet; forwardUrl: string; key: string; caPem: string }> {
  const configFile = join(dir, 'keyvalet.yaml')
  writeFileSync(join(dir, 'upstream-ca.pem'), upstreamCaPem)
  // BENCH_AUDIT_THREAD=on|off|auto: where the audit engine runs (audit.thread), as in the other phases' keyvalet.
  const auditThread = process.env.BENCH_AUDIT_THREAD === undefined ? '' : `audit: { thread: ${process.env.BENCH_AUDIT_THREAD} }\n`
  writeFileSync(configFile, `version: 1
${auditThread}listen: { gateway: "127.0.0.1:0", forward: "127.0.0.1:0" }
data_dir: ./data
dns: { servers: ["${dnsAddress}"] }
connectors:
  echo:
    upstream: https://${HOST}:${upstreamPort}
    upstream_http: h2
    ca_file: upstream-ca.pem
    allow_addresses: [127.0.0.1/32]
    credential: { secret: grpc-token, inject: bearer }
    rules:
      - { id: say, methods: [POST], path: /demo.Echo/Say, severity: read }
`)
  const env = { KEYVALET_MASTER_KEY: randomBytes(32).toString('base64'), KEYVALET_CONFIG: configFile }
  const step = async (args: string[], input?: string): Promise<string> => {
    const r = await cli(args, { env, timeoutMs: 60_000, ...(input === undefined ? {} : { input }) })
    if (r.code !== 0) throw new Error(`keyvalet ${args.slice(0, 2).join(' ')} failed: ${r.stderr.slice(0, 500)}`)
    return r.stdout
  }
  await step(['secret', 'set', 'grpc-token'], SECRET)
  const created = await step(['session', 'create', '--agent', 'bench', '--user', 'bench', '--workspace', 'bench', '--grant', 'echo:read', '--ttl', '1h', '--json'])
  const key = (JSON.parse(created.split('\n').find((l) => l.trim().startsWith('{')) ?? '{}') as { key?: string }).key
  if (key === undefined) throw new Error(`session create printed no key: ${created.slice(0, 300)}`)
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(await step(['ca', 'export']))
  if (pem === null) throw new Error('keyvalet ca export printed no certificate')
  // Only `start` gets the flags: a --cpu-prof on the CLI steps would write profiles of them too.
  const kv = await startChildKeyvalet({ configFile, env: nodeFlags.length === 0 ? env : { ...env, NODE_OPTIONS: nodeFlags.join(' ') } })
  for (let i = 0; i < 100 && !/forward proxy listening on http:\/\/\S+/.test(kv.stdout()); i++) await new Promise((r) => setTimeout(r, 50))
  const forward = /forward proxy listening on (http:\/\/\S+)/.exec(kv.stdout())?.[1]
  if (forward === undefined) throw new Error(`keyvalet printed no forward address: ${kv.stdout().slice(-500)}`)
  return { kv, forwardUrl: forward, key, caPem: `${pem[0]}\n` }
}

/** This process's TCP connections to `port` (grpc-js dials its proxy with node:net, which tells 'net.client.socket'). */
const tunnels = { port: 0, count: 0 }
subscribe('net.client.socket', (message) => {
  const socket = (message as { socket: Socket }).socket
  socket.once('connect', () => { if (socket.remotePort === tunnels.port) tunnels.count++ })
})

export async function runGrpcBench(job: GrpcJob): Promise<GrpcBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'keyvalet-bench-grpc-'))
  const pki = upstreamCertificate(HOST)
  const upstream = await startGrpcUpstream(pki.tls)
  const dns = await startDnsServer({ [HOST]: { a: ['127.0.0.1'] } })
  let kv: ChildKeyvalet | undefined
  const clients: grpc.Client[] = []
  try {
    const started = await keyvaletProcess(dir, dns.address, upstream.port, pki.caPem, job.nodeFlags)
    kv = started.kv
    // The direct channel reaches 127.0.0.1 and checks the leaf against HOST; proxying off for it.
    const direct = new EchoClient(`127.0.0.1:${upstream.port}`, grpc.credentials.createSsl(Buffer.from(pki.caPem)), {
      'grpc.ssl_target_name_override': HOST, 'grpc.default_authority': `${HOST}:${upstream.port}`, 'grpc.enable_http_proxy': 0,
    })
    clients.push(direct)
    // grpc-js takes its proxy from the environment when a channel is made: CONNECT HOST:port, with the task key.
    process.env.grpc_proxy = `http://task:${started.key}@${new URL(started.forwardUrl).host}`
    tunnels.port = Number(new URL(started.forwardUrl).port)
    delete process.env.no_grpc_proxy
    delete process.env.no_proxy
    const proxied = new EchoClient(`${HOST}:${upstream.port}`, grpc.credentials.createSsl(Buffer.from(started.caPem)))
    clients.push(proxied)

    for (let i = 0; i < job.warmup; i++) {
      await say(direct)
      await say(proxied)
    }
    const before = upstream.calls.length
    const upstreamBefore = upstream.connections
    const tunnelsBefore = tunnels.count
    const directSamples = new Samples()
    const proxiedSamples = new Samples()
    const cpu0 = cpuSeconds(kv.pid)
    const from = Number(process.hrtime.bigint() / 1000n)
    for (let i = 0; i < job.calls; i++) {
      directSamples.push(await say(direct))
      proxiedSamples.push(await say(proxied))
    }
    const cpu1 = cpuSeconds(kv.pid)
    const to = Number(process.hrtime.bigint() / 1000n)
    const injected = upstream.calls.slice(before).filter((c) => c.metadata.authorization === `Bearer ${SECRET}`).length

    const concurrentSamples = new Samples()
    let next = 0
    const caller = async (): Promise<void> => {
      while (next++ < job.calls) concurrentSamples.push(await say(proxied))
    }
    const cpu2 = cpuSeconds(kv.pid)
    const t2 = process.hrtime.bigint()
    await Promise.all(Array.from({ length: job.concurrency }, caller))
    const elapsedS = Number(process.hrtime.bigint() - t2) / 1e9
    const cpu3 = cpuSeconds(kv.pid)
    return {
      calls: job.calls, warmup: job.warmup,
      direct: directSamples.summary(), keyvalet: proxiedSamples.summary(),
      keyvaletCpuUsPerCall: cpu0 === undefined || cpu1 === undefined ? Number.NaN : ((cpu1 - cpu0) / job.calls) * 1e6,
      injected, measuredUs: { from, to },
      concurrent: {
        concurrency: job.concurrency, callsPerS: job.calls / elapsedS, latency: concurrentSamples.summary(),
        keyvaletCpuUsPerCall: cpu2 === undefined || cpu3 === undefined ? Number.NaN : ((cpu3 - cpu2) / job.calls) * 1e6,
      },
      connectionsDuringCalls: { tunnels: tunnels.count - tunnelsBefore, upstream: upstream.connections - upstreamBefore },
    }
  } finally {
    for (const c of clients) c.close()
    await kv?.stop()
    await upstream.close()
    await dns.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** The phase's report lines; `table` is run.ts's. */
export function formatGrpc(r: GrpcBenchResult, table: (header: readonly string[], rows: readonly (readonly string[])[]) => string): string[] {
  const ms = (n: number): string => n.toFixed(3)
  const added = (q: 'p50' | 'p99' | 'p999'): string => `${r.keyvalet[q] - r.direct[q] >= 0 ? '+' : ''}${ms(r.keyvalet[q] - r.direct[q])}`
  return [
    `gRPC unary, low load: grpc-js client and TLS server on loopback, ${r.calls.toLocaleString('en-US')} sequential calls each way (alternating) after ${r.warmup} warm-up;`,
    '   through keyvalet: CONNECT, interception over HTTP/2, the credential injected as authorization metadata, HTTP/2 upstream',
    table(['path', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'keyvalet CPU µs/call'], [
      ['direct', ms(r.direct.p50), ms(r.direct.p99), ms(r.direct.p999), ms(r.direct.max), '—'],
      ['through keyvalet', ms(r.keyvalet.p50), ms(r.keyvalet.p99), ms(r.keyvalet.p999), ms(r.keyvalet.max), Number.isFinite(r.keyvaletCpuUsPerCall) ? Math.round(r.keyvaletCpuUsPerCall).toLocaleString('en-US') : '—'],
      ['added by keyvalet', added('p50'), added('p99'), added('p999'), '', ''],
    ]),
    `  the upstream saw the injected credential on ${r.injected.toLocaleString('en-US')} of ${r.calls.toLocaleString('en-US')} measured proxied calls;`,
    `  during them the client opened ${r.connectionsDuringCalls.tunnels} connection(s) to keyvalet (CONNECT tunnels) and the upstream accepted ${r.connectionsDuringCalls.upstream} (keyvalet's)`,
    `  the same ${r.calls.toLocaleString('en-US')} calls through keyvalet with ${r.concurrent.concurrency} in flight on the channel: ${Math.round(r.concurrent.callsPerS).toLocaleString('en-US')} calls/s, p50 ${ms(r.concurrent.latency.p50)} ms, p99 ${ms(r.concurrent.latency.p99)} ms,`,
    `  keyvalet CPU ${Number.isFinite(r.concurrent.keyvaletCpuUsPerCall) ? Math.round(r.concurrent.keyvaletCpuUsPerCall).toLocaleString('en-US') : '—'} µs/call (one at a time, each call pays alone for its wake-ups, its audit commit, its TLS records)`,
  ]
}

if (import.meta.main) {
  process.once('message', (job: GrpcJob) => {
    runGrpcBench(job).then((result) => {
      process.send?.({ event: 'result', result }, () => process.exit(0))
    }, (err: unknown) => {
      process.send?.({ event: 'error', error: err instanceof Error ? err.stack ?? err.message : String(err) }, () => process.exit(1))
    })
  })
  process.on('disconnect', () => process.exit(0))
}
