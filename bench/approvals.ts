/**
 * What requests parked for approval cost while they wait (docs/approvals.md): a real `keyvalet
 * start` process, BENCH_APPROVALS (default 1000) POST requests parked at once, then keyvalet's RSS
 * and CPU over BENCH_APPROVALS_WAIT_S seconds (default 10) of waiting, then every one approved from
 * the store (as `keyvalet approvals approve` does) and the time until all are answered.
 *
 *   ./node_modules/.bin/node bench/approvals.ts
 *
 * It reports; it exits non-zero only when something broke (a request not parked, not answered 200).
 */

import { execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { Agent, request } from 'undici'
import { SqliteStore } from '../src/store/sqlite-store.ts'
import { cpuSeconds, readRss, toMiB } from './rss.ts'

const mib = (bytes: number | undefined): string => toMiB(bytes).toFixed(1)

const COUNT = Number(process.env.BENCH_APPROVALS ?? 1000)
const WAIT_S = Number(process.env.BENCH_APPROVALS_WAIT_S ?? 10)
const REPO = fileURLToPath(new URL('..', import.meta.url))
const CLI = join(REPO, 'src/cli/main.ts')

const upstream = createServer((req, res) => {
  req.resume()
  req.on('end', () => res.end('ok'))
})
await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
const upstreamPort = (upstream.address() as { port: number }).port
const dir = mkdtempSync(join(tmpdir(), 'keyvalet-bench-approvals-'))
const configFile = join(dir, 'keyvalet.yaml')
writeFileSync(configFile, `version: 1
listen: { gateway: "127.0.0.1:0" }
data_dir: ./data
log: { level: error }
connectors:
  echo:
    upstream: http://127.0.0.1:${upstreamPort}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: echo-token, inject: bearer }
    rules:
      - { id: post, methods: [POST], path: /items, severity: write, approval: { timeout: 240s, summary: "Add {name}" } }
`)
const env = { ...process.env, KEYVALET_MASTER_KEY: randomBytes(32).toString('base64') }
const node = process.execPath
execFileSync(node, [CLI, 'secret', 'set', 'echo-token', '--config', configFile], { env, input: 'bench-secret-value-0123456789' })
const created = execFileSync(node, [CLI, 'session', 'create', '--config', configFile, '--agent', 'bench', '--user', 'bench', '--workspace', 'bench', '--grant', 'echo:write', '--ttl', '1h', '--json'], { env }).toString()
const key = (JSON.parse(created.split('\n').find((l) => l.startsWith('{')) ?? '{}') as { key: string }).key

const child = spawn(node, [CLI, 'start', '--config', configFile], { env, stdio: ['ignore', 'pipe', 'inherit'] })
let stdout = ''
child.stdout.on('data', (chunk: Buffer) => void (stdout += chunk.toString()))
let gateway: string | undefined
for (let i = 0; i < 600 && gateway === undefined; i++) {
  gateway = /gateway listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)?.[1]
  if (gateway === undefined) await sleep(50)
}
if (gateway === undefined) throw new Error(`keyvalet start did not listen:\n${stdout}`)
const pid = child.pid as number

const store = SqliteStore.open(join(dir, 'data', 'keyvalet.db'))
const client = new Agent({ connections: COUNT + 10, headersTimeout: 600_000, bodyTimeout: 600_000 })
try {
  await sleep(2000)
  const idle = { rss: readRss(pid), cpu: cpuSeconds(pid) ?? 0 }
  const body = JSON.stringify({ name: 'widget', note: 'x'.repeat(1000) })
  const started = performance.now()
  const answers = Array.from({ length: COUNT }, () =>
    request(`${gateway}/echo/items`, { method: 'POST', dispatcher: client, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body })
      .then(async (res) => ({ status: res.statusCode, text: await res.body.text() })))
  let parked = 0
  for (let i = 0; i < 1200 && parked < COUNT; i++) {
    parked = (await store.approvals.pending(Date.now(), COUNT + 1)).length
    if (parked < COUNT) await sleep(50)
  }
  if (parked < COUNT) throw new Error(`only ${parked} of ${COUNT} requests parked`)
  const parkedMs = performance.now() - started
  await sleep(1000)
  const before = { rss: readRss(pid), cpu: cpuSeconds(pid) ?? 0, at: performance.now() }
  let peak = before.rss ?? 0
  for (let s = 0; s < WAIT_S * 4; s++) {
    await sleep(250)
    peak = Math.max(peak, readRss(pid) ?? 0)
  }
  const waited = { rss: readRss(pid), cpu: cpuSeconds(pid) ?? 0, at: performance.now() }
  const cpuWhileWaiting = waited.cpu - before.cpu
  const seconds = (waited.at - before.at) / 1000

  const decideStart = performance.now()
  const pending = await store.approvals.pending(Date.now(), COUNT + 1)
  for (const a of pending) await store.approvals.decide(a.id, { state: 'approved', approver: { id: 'local', name: 'local:bench' }, reason: undefined, at: Date.now(), rememberUntil: undefined })
  const results = await Promise.all(answers)
  const answeredMs = performance.now() - decideStart
  const bad = results.filter((r) => r.status !== 200)
  if (bad.length > 0) throw new Error(`${bad.length} requests not answered 200 (first: ${bad[0]?.status} ${bad[0]?.text})`)

  const lines = [
    `approvals bench: ${COUNT} requests parked at once on one keyvalet process (${cpus().length} cores, ${cpus()[0]?.model ?? 'unknown CPU'}), Node ${process.version}`,
    `  idle keyvalet:              RSS ${mib(idle.rss)} MiB`,
    `  ${COUNT} parked (in ${Math.round(parkedMs)} ms):  RSS ${mib(before.rss)} MiB (+${mib((before.rss ?? 0) - (idle.rss ?? 0))} MiB, ${(((before.rss ?? 0) - (idle.rss ?? 0)) / COUNT / 1024).toFixed(1)} KiB per request), peak while waiting ${mib(peak)} MiB`,
    `  CPU while waiting:          ${(cpuWhileWaiting * 1000).toFixed(0)} ms over ${seconds.toFixed(1)} s = ${((cpuWhileWaiting / seconds) * 100).toFixed(2)}% of one core (the one poll loop: one store query per 250 ms)`,
    `  all approved from the store, all ${COUNT} answered 200 within ${Math.round(answeredMs)} ms of the first decision`,
  ]
  process.stdout.write(`${lines.join('\n')}\n`)
} finally {
  await client.close()
  await store.close()
  child.kill('SIGTERM')
  await new Promise((resolve) => child.once('exit', resolve))
  upstream.close()
  rmSync(dir, { recursive: true, force: true })
}
