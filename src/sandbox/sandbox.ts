import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync } from 'node:fs'
import { constants } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { OperatorError } from '../errors.ts'

/**
 * How the sandbox gets its namespaces. `root`: keyvalet runs as root, the command as another real
 * uid (setpriv). `userns`: keyvalet runs unprivileged and an unprivileged user namespace maps the
 * invoking user to root for the set-up and to `uid` for the command (the same kernel uid outside).
 */
export type SandboxMode = 'root' | 'userns'

export interface SandboxSpec {
  readonly mode: SandboxMode
  /** argv of the command; argv[0] is looked up on the sandbox's PATH. */
  readonly command: readonly string[]
  /** The command's whole environment: nothing of keyvalet's own is inherited. */
  readonly env: Readonly<Record<string, string>>
  /** Host folder bound read-write at the same path, and the command's working directory. */
  readonly workdir: string
  /** Host paths hidden behind an empty read-only tmpfs (folders) or /dev/null (files). */
  readonly masks: readonly string[]
  /**
   * A folder of keyvalet's Unix sockets, the sandbox's only ways out: forward.sock (the forward
   * proxy, at SANDBOX_PROXY inside) and, when present, gateway.sock (the gateway, at SANDBOX_GATEWAY).
   */
  readonly linksDir: string
  /** keyvalet's CA certificate (at /run/keyvalet/ca.pem inside). */
  readonly caFile: string
  /** A private, empty host folder for the sandbox's root mount point. */
  readonly stateDir: string
  readonly uid: number
  readonly gid: number
}

export interface Sandbox {
  /** Resolves with the command's exit code (128 + signal number when a signal killed it). */
  readonly exited: Promise<number>
  /** Sends a signal to the sandbox's pid 1, which forwards SIGINT, SIGTERM and SIGHUP to the command. */
  signal(signal: NodeJS.Signals): void
}

/** Where the sandbox finds keyvalet: its own loopback, served by the relay (src/sandbox/relay.ts). */
export const SANDBOX_PROXY = { host: '127.0.0.1', port: 8789 } as const
/** An address of its own, so that NO_PROXY can exempt it by host alone (curl ignores ports there). */
export const SANDBOX_GATEWAY = { host: '127.0.0.2', port: 8787 } as const
export const SANDBOX_CA_FILE = '/run/keyvalet/ca.pem'
/** A set-up failure inside the sandbox, before the command ran (like env(1) and container runtimes). */
export const SETUP_FAILED = 125

const SETUP = fileURLToPath(new URL('./setup.sh', import.meta.url))
const RELAY = fileURLToPath(new URL('./relay.ts', import.meta.url))
export const SANDBOX_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
const TOOLS = ['unshare', 'setpriv', 'mount', 'umount', 'mountpoint', 'pivot_root', 'ip', 'hostname', 'sh'] as const

export function sandboxMode(): SandboxMode {
  return process.geteuid?.() === 0 ? 'root' : 'userns'
}

function unshareArgs(mode: SandboxMode): string[] {
  return [...(mode === 'userns' ? ['--user', '--map-root-user'] : []), '--net', '--pid', '--mount', '--ipc', '--uts', '--cgroup', '--fork']
}

/** Fails with one clear line when a tool is missing or the kernel refuses the namespaces. */
export function probeSandbox(mode: SandboxMode): void {
  if (process.platform !== 'linux') throw new OperatorError('keyvalet run needs Linux (namespaces)', 'run the agent on another host or in a container next to keyvalet: see docs/deploy.md')
  const missing = TOOLS.filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`], { env: { PATH: SANDBOX_PATH }, stdio: 'ignore' }).status !== 0)
  if (missing.length > 0) throw new OperatorError(`keyvalet run needs ${missing.join(', ')} on ${SANDBOX_PATH}`, 'on Debian and Ubuntu: apt-get install util-linux iproute2 hostname')
  const probe = spawnSync('unshare', [...unshareArgs(mode), '--', 'true'], { env: { PATH: SANDBOX_PATH }, encoding: 'utf8', timeout: 5000 })
  if (probe.status !== 0) {
    const why = (probe.stderr || probe.error?.message || `exit ${probe.status}`).trim().split('\n')[0]
    throw new OperatorError(
      `the kernel does not let keyvalet make the sandbox's namespaces (unshare ${unshareArgs(mode).join(' ')}: ${why})`,
      mode === 'root'
        ? 'inside a container this needs CAP_SYS_ADMIN (or run keyvalet run on the host)'
        : 'run as root, or allow unprivileged user namespaces: sysctl user.max_user_namespaces=15000 (and on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0)',
    )
  }
}

/**
 * Starts the command in a sandbox of its own (see setup.sh): new PID, mount, network, IPC, UTS
 * and cgroup namespaces; the host's filesystem read-only with private /tmp, /dev and /run, the
 * masks hidden and only `workdir` writable; a network with a loopback and nothing else; no
 * capabilities and no new privileges; the command as `uid`:`gid`. If keyvalet dies, so does the
 * sandbox (parent-death signal on unshare, which kills its child).
 */
export function startSandbox(spec: SandboxSpec): Sandbox {
  const root = join(spec.stateDir, 'root')
  mkdirSync(root, { mode: 0o700 })
  const steps = [
    ...spec.masks.map((path) => ['mask', path] as const),
    ['work', spec.workdir] as const,
  ].sort((a, b) => depth(a[1]) - depth(b[1]))
  const child = spawn('setpriv', [
    '--pdeathsig', 'SIGKILL', '--', 'unshare', ...unshareArgs(spec.mode), '--kill-child=SIGKILL', '--',
    'sh', SETUP, root, spec.linksDir, spec.caFile, spec.workdir, String(spec.uid), String(spec.gid), spec.mode, process.execPath, RELAY,
    ...steps.flat(), '--', ...spec.command,
  ], { env: { ...spec.env }, stdio: 'inherit' })
  const exited = new Promise<number>((resolve, reject) => {
    child.on('error', reject)
    child.on('exit', (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : constants.signals[signal])))
  })
  return {
    exited,
    signal(signal) {
      // setpriv execs unshare (same pid), which forks pid 1 and itself ignores SIGINT and SIGTERM.
      const pid1 = child.pid === undefined ? undefined : childrenOf(child.pid)[0]
      if (pid1 !== undefined) process.kill(pid1, signal)
      else child.kill('SIGKILL') // not set up yet: nothing inside has started the command
    },
  }
}

function depth(path: string): number {
  return path.split('/').filter(Boolean).length
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}
