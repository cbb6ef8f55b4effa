import { spawn, type ChildProcess } from 'node:child_process'
import type { Readable, Writable } from 'node:stream'
import type { SandboxIdentity } from './identity.ts'
import { seccompProgram } from './seccomp.ts'

/** A set-up failure, before the command ran (like env(1) and container runtimes). */
export const SETUP_FAILED = 125

export interface Launch {
  /** Without root: bubblewrap runs in a user namespace that keyvalet maps with newuidmap and newgidmap. */
  readonly rootless: boolean
  readonly identity: SandboxIdentity
  /** bubblewrap's options (namespaces and filesystem); the filter, capabilities and status are added. */
  readonly options: readonly string[]
  /** Descriptors of keyvalet's for bubblewrap, at FIRST_PASSED_FD on (the binds' --bind-fd). */
  readonly pass?: readonly number[]
  /** What setpriv runs as the sandbox's uid. */
  readonly command: readonly string[]
  readonly env: Readonly<Record<string, string>>
  /** The sandbox's standard error: keyvalet's, or collected (for the probe's message). */
  readonly stderr: 'inherit' | 'pipe'
}

export interface Launched {
  readonly process: ChildProcess
  /** The command's exit code (128 + N for signal N), or SETUP_FAILED when it never started. */
  readonly exited: Promise<number>
  /** bubblewrap's pid 1 in the sandbox, as keyvalet sees it, once it exists. */
  pid1(): number | undefined
  /** What was written to standard error, when collected. */
  diagnostics(): string
}

/**
 * bubblewrap keeps only what setpriv needs to become the sandbox's uid, with no groups and no
 * capabilities: bubblewrap's own --uid maps the sandbox to the uid that runs bubblewrap.
 */
const KEEP_FOR_SETPRIV = ['--cap-drop', 'ALL', '--cap-add', 'CAP_SETUID', '--cap-add', 'CAP_SETGID', '--cap-add', 'CAP_SETPCAP']
// The file descriptors bubblewrap reads its options and filter from, and writes its status to;
// without root, the set-up step's: it says it is in its user namespace, keyvalet says go once
// the namespace is mapped; then what keyvalet passes (the binds). bubblewrap closes the first three
// and the binds' in the sandbox, the set-up step the other two.
const ARGS_FD = 3
const SECCOMP_FD = 4
const STATUS_FD = 5
const GO_FD = 6
const READY_FD = 7
export const FIRST_PASSED_FD = 8
/**
 * Without root, between unshare --user and bubblewrap: wait to be mapped (root of the namespace is
 * then keyvalet's user, which bubblewrap needs for its set-up), leave no descriptor of keyvalet's
 * behind, and forbid any further user namespace inside (on top of the filter). The shell that
 * did the waiting was started unmapped, without capabilities: a new one, started as root of the
 * namespace, sets the limit.
 */
const ROOTLESS_STEP = `echo ready >&${READY_FD} && exec ${READY_FD}>&- && read -r go <&${GO_FD} && exec ${GO_FD}<&- && [ "$go" = go ] && ` +
  `exec sh -c 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"' sh "$@"`

/**
 * Runs bubblewrap: its options through a pipe (--args: not on its command line, which the sandbox
 * can read as pid 1's), the seccomp program through another (--seccomp), its status read back
 * (--json-status-fd: the pid of the sandbox's pid 1, then the command's exit code once it ran).
 * bubblewrap runs as root: real root, or without root the root of a user namespace of keyvalet's
 * making (unshare --user) in which newuidmap and newgidmap map root to keyvalet's user and the
 * sandbox's ids to subordinate ones; in both, setpriv then drops to the sandbox's ids. With
 * --die-with-parent, the sandbox ends when keyvalet does.
 */
export function launch(spec: Launch): Launched {
  const { inside } = spec.identity
  const options = ['--die-with-parent', ...KEEP_FOR_SETPRIV, '--seccomp', String(SECCOMP_FD), '--json-status-fd', String(STATUS_FD), ...spec.options]
  const setpriv = ['setpriv', '--reuid', String(inside.uid), '--regid', String(inside.gid), '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs', '--']
  const bwrap = ['bwrap', '--args', String(ARGS_FD), '--', ...setpriv, ...spec.command]
  const argv = spec.rootless ? ['unshare', '--user', '--', 'sh', '-c', ROOTLESS_STEP, 'sh', ...bwrap] : bwrap
  const child = spawn(argv[0] as string, argv.slice(1), {
    env: { ...spec.env }, stdio: ['inherit', 'inherit', spec.stderr, 'pipe', 'pipe', 'pipe', ...(spec.rootless ? ['pipe', 'pipe'] as const : ['ignore', 'ignore'] as const), ...(spec.pass ?? [])],
  })
  const pipes = child.stdio as unknown as readonly (Readable & Writable)[]
  let diagnostics = ''
  child.stderr?.on('data', (chunk: Buffer) => { diagnostics += chunk.toString() })
  for (const fd of [ARGS_FD, SECCOMP_FD, GO_FD]) pipes[fd]?.on('error', () => {}) // it failed before reading: its exit says why
  ;(pipes[ARGS_FD] as Writable).end(Buffer.from(options.map((o) => `${o}\0`).join('')))
  ;(pipes[SECCOMP_FD] as Writable).end(seccompProgram())
  if (spec.rootless) {
    ;(pipes[READY_FD] as Readable).once('data', () => {
      mapIds(child.pid as number, spec.identity, spec.stderr, (text) => { diagnostics += text }).then(
        () => (pipes[GO_FD] as Writable).end('go\n'),
        () => child.kill('SIGKILL'),
      )
    })
  }

  let pid1: number | undefined
  let started = false
  let pending = ''
  ;(pipes[STATUS_FD] as Readable).on('data', (chunk: Buffer) => {
    const lines = (pending + chunk.toString()).split('\n')
    pending = lines.pop() ?? ''
    for (const line of lines.filter((l) => l.trim() !== '')) {
      const report = JSON.parse(line) as { 'child-pid'?: number; 'exit-code'?: number }
      if (report['child-pid'] !== undefined) pid1 = report['child-pid']
      if (report['exit-code'] !== undefined) started = true
    }
  })
  const exited = new Promise<number>((resolve, reject) => {
    child.on('error', reject)
    // bubblewrap reports an exit code only for a command it started; its own failures exit 1.
    child.on('close', (code) => resolve(started && code !== null ? code : SETUP_FAILED))
  })
  return { process: child, exited, pid1: () => pid1, diagnostics: () => diagnostics }
}

/** Root of the new user namespace is keyvalet's user; the sandbox's ids are the subordinate ones. */
async function mapIds(pid: number, identity: SandboxIdentity, stderr: 'inherit' | 'pipe', report: (text: string) => void): Promise<void> {
  const { inside, host } = identity
  const maps = [
    ['newuidmap', String(pid), '0', String(process.getuid?.()), '1', String(inside.uid), String(host.uid), '1'],
    ['newgidmap', String(pid), '0', String(process.getgid?.()), '1', String(inside.gid), String(host.gid), '1'],
  ]
  for (const [tool, ...args] of maps) {
    const mapper = spawn(tool as string, args, { stdio: ['ignore', 'ignore', stderr] })
    mapper.stderr?.on('data', (chunk: Buffer) => report(chunk.toString()))
    const code = await new Promise<number | null>((resolve) => mapper.on('error', () => resolve(null)).on('close', resolve))
    if (code !== 0) throw new Error(`${tool} failed`)
  }
}
