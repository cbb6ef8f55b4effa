import cluster from 'node:cluster'
import { randomBytes } from 'node:crypto'
import { AdminTokens } from '../../admin/tokens.ts'
import { basename } from 'node:path'
import { missingSecrets } from '../../config/check.ts'
import { loadConfig } from '../../config/load.ts'
import type { ReloadTrigger } from '../../config/reload.ts'
import { watchFile } from '../../config/watch.ts'
import { startDemoUpstream } from '../../demo/upstream.ts'
import { OperatorError } from '../../errors.ts'
import { createLogger } from '../../log.ts'
import { KeyvaletMetrics } from '../../metrics/keyvalet-metrics.ts'
import { RequestLog } from '../../proxy/request-log.ts'
import { openRuntime, type Runtime } from '../../runtime.ts'
import { serve } from '../../serve.ts'
import { describeLocation } from '../../store/location.ts'
import { auditPathFor } from '../../store/sqlite-store.ts'
import { CONFIG_OPTION, configPath, parse, write } from '../args.ts'
import type { Command, Io } from '../command.ts'
import { releaseStartupMemory } from '../startup-memory.ts'
import { warningSummary } from '../warnings.ts'
import { WorkerPool } from '../workers.ts'

const help = `usage: keyvalet start [--config FILE] [--demo] [--watch] [--workers N]

Runs the gateway with the given configuration (default: $KEYVALET_CONFIG or ./keyvalet.yaml).
The master key comes from $KEYVALET_MASTER_KEY, $KEYVALET_MASTER_KEY_FILE, or a key file in the
data folder that the first start creates (readable only by its owner).
--demo also starts the local stand-in upstream of the 'demo' connector, stores a random demo
credential if none is stored, mints a demo task key and prints requests to try.
The operator log (JSON or logfmt, log.level and log.format) goes to stdout, one line per request among it.
SIGINT/SIGTERM stop it gracefully: requests and streams in flight may finish for
limits.shutdown_grace_ms (default 10 s); what is left is then cut, each with its closing audit record.
SIGHUP reloads the configuration file (so does POST /v1/config/reload, and, with --watch, saving
the file): it is checked whole and put in force for new requests, or, if anything is wrong, the
configuration in force stays and the errors are logged. A reload changes connectors, tunnels and
limits.max_body_inspect_bytes; the listeners, data_dir, audit, dns, upstream_proxy, sessions and
the other limits need a restart (such a reload is refused).
--workers N runs N worker processes (node:cluster) that share the listeners and the store, each
with its own audit chain; a worker that dies is restarted (with a backoff, logged); SIGTERM stops
them all gracefully, SIGHUP (and --watch) reloads them all. Not with --demo.`

export const start: Command = {
  name: 'start',
  help,
  async run(args, io) {
    const { values } = parse(args, { ...CONFIG_OPTION, demo: { type: 'boolean' }, watch: { type: 'boolean' }, workers: { type: 'string' } }, help)
    const workers = workerCount(values.workers)
    if (workers > 1 && values.demo === true) throw new OperatorError('--demo runs one process: it cannot be combined with --workers')
    if (workers > 1 && cluster.isPrimary) return runWorkers(workers, values.config, values.watch === true, io)
    // SIGHUP reloads, never kills: until keyvalet listens there is nothing to reload yet.
    let reload = (_trigger: Exclude<ReloadTrigger, 'push'>): void => write(io.stderr, 'SIGHUP before keyvalet was listening: nothing to reload yet')
    const onHangup = (): void => reload('signal')
    process.on('SIGHUP', onHangup)
    const closers: (() => Promise<void>)[] = [async () => void process.off('SIGHUP', onHangup)]
    try {
      const config = loadConfig(configPath(values.config, io))
      // A worker's primary created the master key and checked the store before forking it.
      const runtime = await openRuntime(config, { env: io.env, createMasterKey: !cluster.isWorker, checkStore: !cluster.isWorker, keepReads: true })
      closers.push(() => runtime.close())
      write(io.stdout, `master key: ${runtime.master.source}${runtime.master.created ? ' (created now, mode 0600; keep it apart from the database and its backups)' : ''}`)
      const where = runtime.storeLocation
      write(io.stdout, where.kind === 'sqlite' ? `database: ${where.path}, audit log: ${auditPathFor(where.path)}` : `store: ${describeLocation(where)}`)
      for (const c of runtime.storeChecks) write(io.stdout, `checked ${basename(c.file)}: ${c.scope}, ${c.ms} ms`)
      const demo = values.demo === true ? await startDemo(runtime, io) : undefined
      if (demo !== undefined) closers.unshift(demo.close)
      const summary = warningSummary(config, missingSecrets(config.secrets, new Set((await runtime.vault.list()).map((s) => s.name))), io.cwd)
      if (summary !== undefined) write(io.stderr, summary)
      const log = createLogger(io.stdout, { ...config.log, batched: true })
      const metrics = config.metricsEnabled ? new KeyvaletMetrics() : undefined
      const serving = await serve(runtime, { log, metrics, observers: [new RequestLog(log)], ...(config.admin === undefined ? {} : { admin: {} }) })
      closers.unshift(() => serving.close())
      const reloads = serving.live
      reload = (trigger) => void reloads.reload(trigger)
      if (values.watch === true && !cluster.isWorker) {
        const stopWatching = watchFile(config.file, () => reload('watch'))
        closers.unshift(async () => stopWatching())
      }
      releaseStartupMemory()
      // Signals are taken from before the lines that say keyvalet is ready: a supervisor may send
      // SIGTERM the moment it reads them, before the next statement would have run.
      const signalled = untilSignal()
      write(io.stdout, `gateway listening on ${serving.url} (configuration ${serving.live.current.version}${serving.live.current.pushed === undefined ? '' : `, pushed policy ${serving.live.current.pushed.seq}`})`)
      if (serving.forwardUrl !== undefined) write(io.stdout, `forward proxy listening on ${serving.forwardUrl} (sandboxes trust its CA: keyvalet ca bundle --config ${config.file})`)
      const { adminUrl } = serving
      if (adminUrl !== undefined) write(io.stdout, `admin API listening on ${adminUrl} (callers need an admin token: keyvalet admin token create)`)
      if (demo !== undefined) write(io.stdout, await demo.instructions(serving.url, serving.forwardUrl, config.file, adminUrl))
      else write(io.stdout, `try: keyvalet session create --agent my-agent --user me --workspace default --grant CONNECTOR:read, then send requests to ${serving.url}/CONNECTOR/... with the task key as the API key`)
      await signalled
      write(io.stdout, 'stopping: finishing requests in flight')
      return 0
    } finally {
      for (const close of closers) await close()
      // A worker's channel to its primary would keep it alive: it is let go once all is closed.
      if (cluster.isWorker) cluster.worker?.disconnect()
    }
  },
}

function workerCount(text: string | undefined): number {
  if (text === undefined) return 1
  const count = Number(text)
  if (!/^[0-9]+$/.test(text) || count < 1 || count > 64) throw new OperatorError(`--workers ${text} is not a number of processes from 1 to 64`, 'e.g. --workers 2 (one per core is a good start)')
  return count
}

/**
 * The primary of --workers: creates the master key and checks and migrates the store once, then
 * runs the workers (WorkerPool) until a signal, passing reloads on.
 */
async function runWorkers(count: number, configOption: string | boolean | undefined, watch: boolean, io: Io): Promise<number> {
  let pool: WorkerPool | undefined
  const onHangup = (): void => pool?.reload()
  process.on('SIGHUP', onHangup)
  let stopWatching = (): void => {}
  try {
    const config = loadConfig(configPath(configOption, io))
    const runtime = await openRuntime(config, { env: io.env, createMasterKey: true, checkStore: true })
    write(io.stdout, `master key: ${runtime.master.source}${runtime.master.created ? ' (created now, mode 0600; keep it apart from the database and its backups)' : ''}`)
    for (const c of runtime.storeChecks) write(io.stdout, `checked ${basename(c.file)}: ${c.scope}, ${c.ms} ms`)
    await runtime.close()
    const log = createLogger(io.stdout, { ...config.log, batched: false })
    pool = new WorkerPool({ count, log, stopTimeoutMs: config.limits.shutdown_grace_ms + 15_000 })
    await pool.start()
    if (watch) stopWatching = watchFile(config.file, () => pool?.reload())
    releaseStartupMemory()
    const signalled = untilSignal()
    write(io.stdout, `${count} workers listening (pids ${Object.values(cluster.workers ?? {}).map((w) => w?.process.pid).join(', ')})`)
    const failed = await Promise.race([signalled.then(() => false), pool.failed])
    write(io.stdout, 'stopping: the workers finish requests in flight')
    return failed ? 1 : 0
  } catch (err) {
    if (!(err instanceof Error) || pool === undefined) throw err
    write(io.stderr, err.message)
    return 1
  } finally {
    stopWatching()
    await pool?.stop()
    process.off('SIGHUP', onHangup)
  }
}

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop).off('SIGTERM', stop)
      resolve()
    }
    process.on('SIGINT', stop).on('SIGTERM', stop)
  })
}

async function startDemo(runtime: Runtime, io: Io) {
  const connector = runtime.config.policy.connectors.get('demo')
  if (connector?.credential?.secret === undefined || connector.credential.source.type !== 'static') throw new OperatorError('--demo needs a connector named demo with a static credential', 'see examples/keyvalet.yaml')
  const { hostname, port } = connector.upstream
  if (hostname !== '127.0.0.1' && hostname !== 'localhost') throw new OperatorError('the demo connector must point at a loopback address')
  const upstream = await startDemoUpstream({
    host: hostname, port: Number(port || 80),
    onRequest: (seen) => write(io.stdout, `[demo upstream] received ${seen.method} ${seen.path} with authorization: ${String(seen.headers.authorization ?? '(none)')}`),
  })
  const secretName = connector.credential.secret
  if ((await runtime.vault.list()).every((s) => s.name !== secretName)) {
    await runtime.vault.put(secretName, Buffer.from(`demo-secret-${randomBytes(12).toString('hex')}`))
  }
  const { session, key } = await runtime.sessions.create({
    agent: 'demo-agent', user: 'alice', workspace: 'demo', grants: [{ connector: 'demo', maxSeverity: 'write', rules: undefined }], ttlMs: 3_600_000,
  })
  const connectorUrl = connector.upstream.origin
  return {
    close: upstream.close,
    instructions: async (gatewayUrl: string, forwardUrl: string | undefined, configFile: string, adminUrl: string | undefined) => [
      `demo upstream (a local stand-in for a real API) on ${upstream.url}; its credential is vault secret "${secretName}"`,
      `demo task key for agent demo-agent, user alice (session ${session.id}, grant demo:write, 1h):`,
      `  ${key}`,
      '',
      'Try it from another terminal:',
      `  curl -s -H "Authorization: Bearer ${key}" ${gatewayUrl}/demo/items/42`,
      '      allowed: the upstream receives the real credential (printed here), the answer reaches you with it masked',
      `  curl -s -X DELETE -H "Authorization: Bearer ${key}" ${gatewayUrl}/demo/items/42`,
      '      refused: deleting needs severity admin, the task was granted write',
      ...(forwardUrl === undefined ? [] : [
        `  curl -s -x ${forwardUrl.replace('http://', `http://task:${key}@`)} ${connectorUrl}/items/7`,
        '      the same through the forward proxy, as an unmodified tool would (HTTPS_PROXY / HTTP_PROXY)',
      ]),
      ...(adminUrl === undefined ? [] : await demoAdmin(runtime, adminUrl)),
      `  ./bin/keyvalet audit tail --config ${configFile}`,
      `  ./bin/keyvalet audit verify --config ${configFile}`,
    ].join('\n'),
  }
}

/**
 * With an admin listener, the demo also mints an operator admin token (1 h) and shows how an
 * orchestrator mints a task key over the API, as the README's walk-through does.
 */
async function demoAdmin(runtime: Runtime, adminUrl: string): Promise<string[]> {
  const { value } = await new AdminTokens(runtime.store.adminTokens, Date.now).create({ name: 'demo-orchestrator', role: 'operator', ttlMs: 3_600_000 })
  const body = JSON.stringify({ agent: 'demo-agent', user: 'alice', workspace: 'demo', grant: ['demo:read'], ttl: '15m' })
  return [
    `  curl -s -X POST -H "Authorization: Bearer ${value}" -H 'content-type: application/json' -d '${body}' ${adminUrl}/v1/sessions`,
    '      an orchestrator mints a task key over the admin API (an operator token, 1h, made for this demo): the key once, and the sandbox environment',
  ]
}
