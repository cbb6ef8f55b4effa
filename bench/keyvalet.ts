/**
 * Runs keyvalet through its own CLI, as an operator would: config file, `secret set`,
 * `session create`, `start`. Every step is a separate process.
 */

import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Children, Managed } from './children.ts'

export const SECRET_VALUE = `echo-secret-${randomBytes(12).toString('hex')}`

export interface KeyvaletInstance {
  readonly process: Managed
  readonly url: string
  readonly key: string
  readonly configFile: string
  readonly env: NodeJS.ProcessEnv
}

export function configText(upstreamPort: number): string {
  return `version: 1
listen:
  gateway: "127.0.0.1:0"
data_dir: ./data
connectors:
  echo:
    upstream: http://127.0.0.1:${upstreamPort}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: echo-token, inject: bearer }
    rules:
      - { id: read-items, methods: [GET], path: /items/**, severity: read }
      - { id: upload, methods: [PUT, POST], path: /upload, severity: write }
`
}

export async function startKeyvalet(opts: {
  children: Children
  repo: string
  dir: string
  upstreamPort: number
  /** Extra node flags for the gateway process (e.g. --cpu-prof). */
  nodeFlags: readonly string[]
}): Promise<KeyvaletInstance> {
  const { children, repo, dir } = opts
  const configFile = join(dir, 'keyvalet.yaml')
  writeFileSync(configFile, configText(opts.upstreamPort))
  const env: NodeJS.ProcessEnv = { ...process.env, KEYVALET_MASTER_KEY: randomBytes(32).toString('base64') }
  delete env.KEYVALET_CONFIG
  const cli = join(repo, 'src/cli/main.ts')
  const base = { cwd: repo, env, timeoutMs: 30_000 }

  await children.run('keyvalet secret set', [cli, 'secret', 'set', 'echo-token', '--config', configFile], { ...base, input: SECRET_VALUE })
  const created = await children.run('keyvalet session create', [
    cli, 'session', 'create', '--config', configFile, '--agent', 'bench', '--user', 'bench', '--workspace', 'bench',
    '--grant', 'echo:write', '--ttl', '1h', '--json',
  ], base)
  const jsonLine = created.split('\n').find((l) => l.trim().startsWith('{'))
  if (jsonLine === undefined) throw new Error(`session create printed no JSON:\n${created}`)
  const key = (JSON.parse(jsonLine) as { key?: unknown }).key
  if (typeof key !== 'string' || key === '') throw new Error(`session create JSON has no key:\n${jsonLine}`)

  const proc = children.spawn('keyvalet start', [...opts.nodeFlags, cli, 'start', '--config', configFile], { cwd: repo, env })
  const m = await proc.waitForStdout(/gateway listening on (http:\/\/127\.0\.0\.1:\d+)/, 30_000)
  return { process: proc, url: m[1] as string, key, configFile, env }
}
