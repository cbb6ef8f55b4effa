import { spawnSync } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { OperatorError } from '../errors.ts'
import { FIRST_PASSED_FD, launch } from './bwrap.ts'
import type { SandboxIdentity } from './identity.ts'
import { syscallTable } from './seccomp.ts'
import type { Bind } from './binds.ts'
import { systemArgs, viewArgs } from './view.ts'

/**
 * How the sandbox gets its namespaces. `root`: keyvalet runs as root; bubblewrap builds the
 * sandbox as root and the command runs as another real uid. `userns`: keyvalet runs unprivileged;
 * a user namespace maps keyvalet's user to root (for bubblewrap's set-up) and the sandbox's uid to
 * a subordinate uid of keyvalet's user (see identity.ts).
 */
export type SandboxMode = 'root' | 'userns'

export interface SandboxSpec {
  readonly mode: SandboxMode
  readonly identity: SandboxIdentity
  /** argv of the command; argv[0] is looked up on the sandbox's PATH. */
  readonly command: readonly string[]
  /** The command's whole environment: nothing of keyvalet's own is inherited. */
  readonly env: Readonly<Record<string, string>>
  /** Host folder bound read-write at its own path, and the command's working directory. */
  readonly workdir: Bind
  /** More host paths at their own path (--bind, --ro-bind). */
  readonly binds: readonly Bind[]
  /** Host paths hidden behind an empty read-only tmpfs (folders) or /dev/null (files) where a bind would show them. */
  readonly masks: readonly string[]
  /**
   * A folder of keyvalet's Unix sockets, the sandbox's only ways out: forward.sock (the forward
   * proxy, at SANDBOX_PROXY inside) and, when present, gateway.sock (the gateway, at SANDBOX_GATEWAY).
   */
  readonly linksDir: string
  /** keyvalet's CA certificate (at /run/keyvalet/ca.pem inside). */
  readonly caFile: string
  /** A private host folder (0700) for the sandbox's generated files. */
  readonly stateDir: string
}

export interface Sandbox {
  /** Resolves with the command's exit code (128 + signal number when a signal killed it; SETUP_FAILED if it never ran). */
  readonly exited: Promise<number>
  /** Sends a signal to the relay, which forwards SIGINT, SIGTERM and SIGHUP to the command. */
  signal(signal: NodeJS.Signals): void
}

/** Where the sandbox finds keyvalet: its own loopback, served by the relay (src/sandbox/relay.ts). */
export const SANDBOX_PROXY = { host: '127.0.0.1', port: 8789 } as const
/** An address of its own, so that NO_PROXY can exempt it by host alone (curl ignores ports there). */
export const SANDBOX_GATEWAY = { host: '127.0.0.2', port: 8787 } as const
export const SANDBOX_CA_FILE = '/run/keyvalet/ca.pem'
/** The command's HOME: private, writable, created by the relay in the sandbox's own /home. */
export const SANDBOX_HOME = '/home/sandbox'
export { SETUP_FAILED } from './bwrap.ts'
export const SANDBOX_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
const HOSTNAME = 'keyvalet-sandbox'

const RELAY = fileURLToPath(new URL('./relay.ts', import.meta.url))
const NAMESPACES = ['--unshare-net', '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup', '--hostname', HOSTNAME]

export function sandboxMode(): SandboxMode {
  return process.geteuid?.() === 0 ? 'root' : 'userns'
}

function tools(mode: SandboxMode): string[] {
  return mode === 'root' ? ['bwrap', 'setpriv'] : ['bwrap', 'setpriv', 'unshare', 'sh', 'newuidmap', 'newgidmap']
}

/**
 * Fails with one clear line where the sandbox cannot be made: not Linux, no filter for this
 * machine, a tool missing, or the kernel refusing; by making one that runs `true`.
 */
export async function probeSandbox(mode: SandboxMode, identity: SandboxIdentity): Promise<void> {
  if (process.platform !== 'linux') throw new OperatorError('keyvalet run needs Linux (namespaces)', 'run the agent on another host or in a container next to keyvalet: see docs/deploy.md')
  syscallTable()
  const missing = tools(mode).filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`], { env: { PATH: SANDBOX_PATH }, stdio: 'ignore' }).status !== 0)
  if (missing.length > 0) throw new OperatorError(`keyvalet run needs ${missing.join(', ')} on ${SANDBOX_PATH}`, `on Debian and Ubuntu: apt-get install bubblewrap util-linux${mode === 'userns' ? ' uidmap' : ''}`)
  const child = launch({
    rootless: mode === 'userns', identity, options: [...NAMESPACES, ...systemArgs(), '--proc', '/proc', '--dev', '/dev', '--remount-ro', '/'],
    command: ['true'], env: { PATH: SANDBOX_PATH }, stderr: 'pipe',
  })
  const timer = setTimeout(() => child.process.kill('SIGKILL'), 10_000)
  const code = await child.exited.finally(() => clearTimeout(timer))
  if (code !== 0) {
    const why = child.diagnostics().trim().split('\n')[0] || `exit ${code}`
    throw new OperatorError(
      `keyvalet cannot make the sandbox here (${why})`,
      mode === 'root'
        ? 'inside a container this needs CAP_SYS_ADMIN and a seccomp profile that allows namespaces (or run keyvalet run on the host)'
        : 'run as root, or allow unprivileged user namespaces: sysctl user.max_user_namespaces=15000 (and on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0)',
    )
  }
}

/**
 * Starts the command in a sandbox of its own: new PID, mount, network, IPC, UTS and cgroup
 * namespaces; the filesystem of view.ts; a network with a loopback and nothing else; the
 * system call filter of seccomp.ts; no capabilities, no new privileges, the command as the
 * identity's uid. If keyvalet dies, so does the sandbox (bubblewrap's --die-with-parent on its
 * pid 1, whose end ends the PID namespace).
 */
export function startSandbox(spec: SandboxSpec): Sandbox {
  const sockets = Object.fromEntries(['forward', 'gateway'].filter((name) => isSocket(join(spec.linksDir, `${name}.sock`))).map((name) => [name, join(spec.linksDir, `${name}.sock`)]))
  // The bound descriptors, from the first one after bubblewrap's own on.
  const passed = [spec.workdir, ...spec.binds]
  const view = viewArgs({
    binds: passed.map((b, i) => ({ path: b.path, writable: b.writable, fd: FIRST_PASSED_FD + i })), masks: spec.masks, sockets, caFile: spec.caFile, node: process.execPath, relay: RELAY,
    etcDir: join(spec.stateDir, 'etc'), user: { ...spec.identity.inside, home: SANDBOX_HOME }, hostname: HOSTNAME,
  })
  const relays = Object.keys(sockets).map((name) => `${name === 'forward' ? `${SANDBOX_PROXY.host}:${SANDBOX_PROXY.port}` : `${SANDBOX_GATEWAY.host}:${SANDBOX_GATEWAY.port}`}=/run/keyvalet/${name}.sock`)
  const child = launch({
    rootless: spec.mode === 'userns', identity: spec.identity, options: [...NAMESPACES, ...view, '--chdir', spec.workdir.path], pass: passed.map((b) => b.fd),
    command: ['/run/keyvalet/node', '/run/keyvalet/relay.ts', ...relays, '--', ...spec.command], env: spec.env, stderr: 'inherit',
  })
  return {
    exited: child.exited,
    signal(signal) {
      // bubblewrap's pid 1 reaps; its first child is the relay, which forwards the signal.
      const pid1 = child.pid1()
      const relay = pid1 === undefined ? undefined : childrenOf(pid1)[0]
      if (relay !== undefined) process.kill(relay, signal)
      else child.process.kill('SIGKILL') // not set up yet: nothing inside has started the command
    },
  }
}

function isSocket(path: string): boolean {
  try {
    return statSync(path).isSocket()
  } catch {
    return false
  }
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}
