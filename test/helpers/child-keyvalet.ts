import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cli, MAIN, type CliResult } from './cli.ts'

export interface ChildKeyvalet {
  readonly url: string
  readonly pid: number
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** What the process wrote to stderr so far (the operator log). */
  stderr(): string
  /** What the process wrote to stdout so far (the addresses it listens on). */
  stdout(): string
  /** The CLI against the same data folder (inside keyvalet's mount namespace when it has one). */
  cli(args: string[], opts?: { input?: string }): Promise<CliResult>
  /** Sends `signal` and waits (bounded) for the exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/**
 * `keyvalet start` as a real child process, so tests can SIGKILL or SIGTERM it. With `tmpfs`, its
 * data folder is a fresh tmpfs of that size mounted in a private mount namespace of its own
 * (`unshare -m`): nothing is mounted on the host, and the mount goes away with the process. The
 * process is keyvalet itself (unshare and sh exec it), so its files are reachable from here at
 * `/proc/<pid>/root<data dir>` (see `inside`).
 */
export async function startChildKeyvalet(opts: { configFile: string; env: NodeJS.ProcessEnv; tmpfs?: { dir: string; size: string }; args?: readonly string[] }): Promise<ChildKeyvalet> {
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, ...opts.env }
  const child = opts.tmpfs === undefined
    ? spawn(process.execPath, [MAIN, 'start', '--config', opts.configFile, ...(opts.args ?? [])], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs -o "size=$1,mode=0700" tmpfs "$2" && exec "$3" "$4" start --config "$5"',
      'sh', opts.tmpfs.size, opts.tmpfs.dir, process.execPath, MAIN, opts.configFile], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  const pid = child.pid
  if (pid === undefined) throw new Error('keyvalet did not start')
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`keyvalet printed no address: ${stdout} ${stderr}`)), 60_000)
    const look = (): void => {
      const match = /gateway listening on (http:\/\/\S+)/.exec(stdout)
      if (match?.[1] === undefined) return
      clearTimeout(timer)
      child.stdout.off('data', look)
      resolve(match[1])
    }
    child.stdout.on('data', look)
    void exited.then(() => {
      clearTimeout(timer)
      reject(new Error(`keyvalet exited before listening: ${stdout} ${stderr}`))
    })
  })
  const wrap = opts.tmpfs === undefined ? undefined : ['nsenter', '-t', String(pid), '-m', '--']
  return {
    url,
    pid,
    exited,
    stderr: () => stderr,
    stdout: () => stdout,
    cli: (args, o = {}) => cli(args, { env: opts.env, ...o, ...(wrap === undefined ? {} : { wrap }) }),
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
      const result = await exited
      clearTimeout(timer)
      return result
    },
  }
}

/** A path inside the mount namespace of process `pid` (plain file operations only: SQLite resolves the link and would miss it). */
export function inside(pid: number, path: string): string {
  return `/proc/${pid}/root${path}`
}

/**
 * Whether this machine lets the tests mount a tmpfs in a private mount namespace (root, or
 * CAP_SYS_ADMIN, and unshare/nsenter installed); the reason when it does not.
 */
export function tmpfsUnavailable(): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'keyvalet-tmpfs-probe-'))
  try {
    const probe = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs -o size=64k tmpfs "$1"', 'sh', dir], { encoding: 'utf8', timeout: 10_000 })
    if (probe.error !== undefined) return `unshare is not available (${probe.error.message})`
    if (probe.status !== 0) return `cannot mount a tmpfs in a private mount namespace: ${probe.stderr.trim()}`
    const nsenter = spawnSync('nsenter', ['--version'], { encoding: 'utf8', timeout: 10_000 })
    if (nsenter.error !== undefined) return `nsenter is not available (${nsenter.error.message})`
    return undefined
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
