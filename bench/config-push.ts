/**
 * The push phase: how long a pushed policy (`keyvalet config push`) takes to be in force on a
 * fleet. Two keyvalet instances (fleet.policy: pushed) on one PostgreSQL database, in this
 * process; BENCH_PUSHES times (default 20), a policy is pushed through the store as the command
 * stores it (the next number, a MAC under the master key) and the time from its commit until both
 * instances serve under it is taken. Run alone: `./node_modules/.bin/node bench/config-push.ts`,
 * or as phase push of bench/run.ts.
 */

import { randomBytes } from 'node:crypto'
import { hostname, userInfo } from 'node:os'
import { policyDigest } from '../src/config/policy-file.ts'
import { pushMac } from '../src/config/push-mac.ts'
import { startKeyvalet, type TestKeyvalet } from '../test/helpers/keyvalet.ts'
import { startTestPostgres, storeBlock } from '../test/helpers/postgres.ts'
import { startUpstream } from '../test/helpers/upstream.ts'
import { median } from './stats.ts'

export interface PushBenchResult {
  readonly pushes: number
  readonly instances: number
  readonly medianMs: number
  readonly maxMs: number
}

function connectors(upstreamUrl: string, path: string): string {
  return `connectors:
  api:
    upstream: ${upstreamUrl}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    rules: [{ id: read, methods: [GET], path: "${path}", severity: read }]
`
}

export async function runPushBench(pushes = 20): Promise<PushBenchResult> {
  const upstream = await startUpstream()
  const server = await startTestPostgres()
  const fleet: TestKeyvalet[] = []
  try {
    const store = storeBlock(server, await server.database())
    const masterKey = randomBytes(32).toString('base64')
    const config = `version: 1\nlisten: { gateway: "127.0.0.1:0" }\nfleet: { policy: pushed }\n${store.yaml}${connectors(upstream.url, '/**')}`
    for (let i = 0; i < 2; i++) fleet.push(await startKeyvalet(config, { files: store.files, masterKey }))
    const [first] = fleet as [TestKeyvalet]
    const master = first.runtime.master
    const pushedBy = `${userInfo().username}@${hostname()}`
    const times: number[] = []
    for (let n = 0; n < pushes; n++) {
      const text = connectors(upstream.url, `/v${n}/**`)
      const sha256 = policyDigest(text)
      const row = await first.runtime.store.pushedConfigs.push((seq) => {
        const covered = { seq, sha256, pushedAt: Date.now(), pushedBy }
        return { ...covered, text, keyId: master.keyId, mac: pushMac(master, covered) }
      })
      const t0 = performance.now()
      const seen = await Promise.all(fleet.map(async (kv) => {
        while (kv.live.current.pushed?.seq !== row.seq) {
          if (performance.now() - t0 > 10_000) throw new Error(`push bench: push ${row.seq} not in force within 10 s`)
          await new Promise((resolve) => setTimeout(resolve, 1))
        }
        return performance.now() - t0
      }))
      times.push(Math.max(...seen))
    }
    return { pushes, instances: fleet.length, medianMs: median(times), maxMs: Math.max(...times) }
  } finally {
    for (const kv of fleet) await kv.close()
    await server.stop()
    await upstream.close()
  }
}

if (import.meta.main) {
  try {
    const result = await runPushBench(Number(process.env.BENCH_PUSHES ?? 20))
    if (process.send !== undefined) process.send({ event: 'result', result }, () => process.exit(0))
    else process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
  } catch (err) {
    const error = err instanceof Error ? err.stack ?? err.message : String(err)
    if (process.send !== undefined) process.send({ event: 'error', error }, () => process.exit(1))
    else {
      process.stderr.write(`${error}\n`)
      process.exitCode = 1
    }
  }
}
