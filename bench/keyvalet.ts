/**
 * Runs keyvalet through its own CLI, as an operator would: config file, `secret set`,
 * `session create`, `ca export`, `start`. Every step is a separate process; `start` is launched by
 * bin/keyvalet, with the node flags it adds (the measured process is the one operators run).
 */

import { randomBytes } from 'node:crypto'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Children, Managed } from './children.ts'

export const SECRET_VALUE = `echo-secret-${randomBytes(12).toString('hex')}`

/** Proxy-Authorization for keyvalet's forward listener: the task key as the Basic password. */
export const proxyBasic = (key: string): string => `Basic ${Buffer.from(`task:${key}`).toString('base64')}`

/** What the forward-mode phases need besides the plain upstream. */
export interface ForwardSetup {
  /** The bench upstream's HTTPS port on 127.0.0.1 (connector `tls`). */
  readonly httpsPort: number
  /** PEM of the CA that signed the upstream's leaves (written beside the config, named by ca_file). */
  readonly upstreamCaPem: string
  /** HTTPS listeners on distinct IP literals, one connector each (`mint-N`), for the leaf-minting measurement. */
  readonly mintHosts: readonly { host: string; port: number }[]
  /** Connectors `sse-0` … onto the plain upstream under base path /sse/N (one keep-alive pool each). */
  readonly sseConnectors: number
}

export interface KeyvaletInstance {
  readonly process: Managed
  readonly url: string
  readonly key: string
  readonly configFile: string
  readonly env: NodeJS.ProcessEnv
  /** With --workers: the worker processes (the primary is `process`). */
  readonly workerPids: readonly number[]
  /** Set when started with a ForwardSetup. */
  readonly forward: {
    readonly url: string
    /** keyvalet's interception CA, as `keyvalet ca export` printed it. */
    readonly caPem: string
    /** A second task key with grants on tls, mint-* and sse-* (the first one keeps its single grant). */
    readonly key: string
    readonly connectors: { readonly tls: string; readonly mint: readonly string[]; readonly sse: readonly string[] }
  } | undefined
}

const credential = '    credential: { secret: echo-token, inject: bearer }'

/**
 * `observability: false`: no metrics and only error lines in the operator log (no line per
 * request), for the phase that measures what metrics and request logging cost.
 */
export function configText(upstreamPort: number, forward?: ForwardSetup, observability = true): string {
  const lines = [
    'version: 1',
    ...(observability ? [] : ['metrics: { enabled: false }', 'log: { level: error }']),
    // BENCH_AUDIT_THREAD=on|off|auto: where the audit engine runs (audit.thread), to measure both.
    ...(process.env.BENCH_AUDIT_THREAD === undefined ? [] : [`audit: { thread: ${process.env.BENCH_AUDIT_THREAD} }`]),
    'listen:',
    '  gateway: "127.0.0.1:0"',
    ...(forward === undefined ? [] : ['  forward: "127.0.0.1:0"']),
    'data_dir: ./data',
    'connectors:',
    '  echo:',
    `    upstream: http://127.0.0.1:${upstreamPort}`,
    '    allow_insecure: true',
    '    allow_addresses: [127.0.0.1/32]',
    credential,
    '    rules:',
    '      - { id: read-items, methods: [GET], path: /items/**, severity: read }',
    '      - { id: upload, methods: [PUT, POST], path: /upload, severity: write }',
  ]
  if (forward !== undefined) {
    lines.push('  tls:', `    upstream: https://127.0.0.1:${forward.httpsPort}`, '    ca_file: upstream-ca.pem', '    allow_addresses: [127.0.0.1/32]', credential,
      '    rules:', '      - { id: read-items, methods: [GET], path: /items/**, severity: read }')
    for (const [i, m] of forward.mintHosts.entries()) {
      lines.push(`  mint-${i}:`, `    upstream: https://${m.host}:${m.port}`, '    ca_file: upstream-ca.pem', `    allow_addresses: [${m.host}/32]`, credential,
        '    rules:', '      - { id: read-items, methods: [GET], path: /items/**, severity: read }')
    }
    for (let i = 0; i < forward.sseConnectors; i++) {
      lines.push(`  sse-${i}:`, `    upstream: http://127.0.0.1:${upstreamPort}/sse/${i}`, '    allow_insecure: true', '    allow_addresses: [127.0.0.1/32]', credential,
        '    rules:', '      - { id: events, methods: [GET], path: /events, severity: read }')
    }
  }
  return `${lines.join('\n')}\n`
}

export async function startKeyvalet(opts: {
  children: Children
  repo: string
  dir: string
  upstreamPort: number
  /** Extra node flags for the gateway process (e.g. --cpu-prof), passed in NODE_OPTIONS (no spaces inside one flag). */
  nodeFlags: readonly string[]
  /** Adds the forward listener and the connectors the forward-mode phases use. */
  forward?: ForwardSetup
  /** Added to the environment of `keyvalet start` only. */
  extraEnv?: NodeJS.ProcessEnv
  /** false: metrics off and no request log lines (configText). Default true, keyvalet's defaults. */
  observability?: boolean
  /** `keyvalet start --workers N` (N > 1): resolves once every worker listens; their pids in `workerPids`. */
  workers?: number
}): Promise<KeyvaletInstance> {
  const { children, repo, dir, forward } = opts
  const configFile = join(dir, 'keyvalet.yaml')
  writeFileSync(configFile, configText(opts.upstreamPort, forward, opts.observability ?? true))
  if (forward !== undefined) writeFileSync(join(dir, 'upstream-ca.pem'), forward.upstreamCaPem)
  const env: NodeJS.ProcessEnv = { ...process.env, KEYVALET_MASTER_KEY: randomBytes(32).toString('base64') }
  delete env.KEYVALET_CONFIG
  // The entry bin/keyvalet runs (main.ts directly in revisions before it existed, for A/B runs against them).
  const cli = existsSync(join(repo, 'src/cli/entry.mjs')) ? join(repo, 'src/cli/entry.mjs') : join(repo, 'src/cli/main.ts')
  const base = { cwd: repo, env, timeoutMs: 30_000 }

  await children.run('keyvalet secret set', [cli, 'secret', 'set', 'echo-token', '--config', configFile], { ...base, input: SECRET_VALUE })
  const createKey = async (grants: readonly string[]): Promise<string> => {
    const created = await children.run('keyvalet session create', [
      cli, 'session', 'create', '--config', configFile, '--agent', 'bench', '--user', 'bench', '--workspace', 'bench',
      ...grants.flatMap((g) => ['--grant', g]), '--ttl', '1h', '--json',
    ], base)
    const jsonLine = created.split('\n').find((l) => l.trim().startsWith('{'))
    if (jsonLine === undefined) throw new Error(`session create printed no JSON:\n${created}`)
    const key = (JSON.parse(jsonLine) as { key?: unknown }).key
    if (typeof key !== 'string' || key === '') throw new Error(`session create JSON has no key:\n${jsonLine}`)
    return key
  }
  const key = await createKey(['echo:write'])
  let extra: { caPem: string; key: string; connectors: { tls: string; mint: string[]; sse: string[] } } | undefined
  if (forward !== undefined) {
    const connectors = { tls: 'tls', mint: forward.mintHosts.map((_, i) => `mint-${i}`), sse: Array.from({ length: forward.sseConnectors }, (_, i) => `sse-${i}`) }
    const key2 = await createKey([connectors.tls, ...connectors.mint, ...connectors.sse].map((c) => `${c}:read`))
    const exported = await children.run('keyvalet ca export', [cli, 'ca', 'export', '--config', configFile], base)
    const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(exported)
    if (pem === null) throw new Error(`keyvalet ca export printed no certificate:\n${exported.slice(0, 500)}`)
    extra = { caPem: `${pem[0]}\n`, key: key2, connectors }
  }

  const workers = opts.workers ?? 1
  const nodeOptions = [env.NODE_OPTIONS ?? '', ...opts.nodeFlags].filter((x) => x !== '').join(' ')
  const proc = children.spawnCommand('keyvalet start', join(repo, 'bin/keyvalet'), ['start', '--config', configFile, ...(workers > 1 ? ['--workers', String(workers)] : [])],
    { cwd: repo, env: { ...env, ...opts.extraEnv, ...(nodeOptions === '' ? {} : { NODE_OPTIONS: nodeOptions }) } })
  const m = await proc.waitForStdout(/gateway listening on (http:\/\/127\.0\.0\.1:\d+)/, 30_000)
  const workerPids = workers > 1 ? String((await proc.waitForStdout(/workers listening \(pids ([\d, ]+)\)/, 60_000))[1]).split(', ').map(Number) : []
  let fwd: KeyvaletInstance['forward']
  if (extra !== undefined) {
    const f = await proc.waitForStdout(/forward proxy listening on (http:\/\/127\.0\.0\.1:\d+)/, 10_000)
      .catch((err: unknown) => { throw new Error(`keyvalet start printed no "forward proxy listening on http://…" line (${err instanceof Error ? err.message : String(err)}); stdout:\n${proc.stdout.slice(-1000)}`) })
    fwd = { url: f[1] as string, ...extra }
  }
  return { process: proc, url: m[1] as string, key, configFile, env, forward: fwd, workerPids }
}
