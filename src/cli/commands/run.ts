import { mkdirSync, mkdtempSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { AuditWriter } from '../../audit/audit-writer.ts'
import { loadConfig, type Config } from '../../config/load.ts'
import { OperatorError } from '../../errors.ts'
import { createLogger } from '../../log.ts'
import { createProxy } from '../../proxy/proxy.ts'
import { openRuntime, type Runtime } from '../../runtime.ts'
import { assertAnotherUid, sandboxIdentity } from '../../sandbox/identity.ts'
import { probeSandbox, SANDBOX_CA_FILE, SANDBOX_GATEWAY, SANDBOX_HOME, SANDBOX_PATH, SANDBOX_PROXY, sandboxMode, startSandbox } from '../../sandbox/sandbox.ts'
import { startSocketBridge } from '../../sandbox/socket-bridge.ts'
import { within } from '../../sandbox/view.ts'
import { closeBinds, openBind, type Bind } from '../../sandbox/binds.ts'
import { loadOrCreateCa } from '../../tls/ca-store.ts'
import { baseCertificates, trustBundle } from '../../tls/trust-bundle.ts'
import { MASTER_KEY_FILE_ENV } from '../../vault/master-key.ts'
import { CONFIG_OPTION, configPath, parse, write } from '../args.ts'
import type { Command, Io } from '../command.ts'
import { createSession } from './session.ts'
import { releaseStartupMemory } from '../startup-memory.ts'
import { SESSION_FLAGS } from '../../sessions/options.ts'
import { sandboxEnv } from '../../sessions/sandbox-env.ts'

const help = `usage: keyvalet run --agent A --user U [--workspace W] --grant CONNECTOR:SEVERITY[:RULE,...] [--grant ...]
                    [--ttl 1h] [--task ID] [--workdir DIR] [--bind PATH]... [--ro-bind PATH]... [--uid UID[:GID]]
                    [--attach HOST:PORT[,HOST:PORT]] [--config FILE] -- COMMAND [ARG]...

Mints a task key (as session create does), runs COMMAND in a sandbox whose only ways out are
keyvalet's forward proxy and gateway, and revokes the key when COMMAND exits, crashes or is
killed. Exits with COMMAND's exit code (128 + N when signal N killed it); SIGINT, SIGTERM and
SIGHUP are forwarded to it.

The sandbox (bubblewrap; as root, or unprivileged in a user namespace of subordinate ids): its own
network with a loopback and nothing else (the proxy at 127.0.0.1:8789 and the gateway at
127.0.0.2:8787 are relays to Unix sockets of keyvalet; no DNS), its own PID namespace and /proc,
uid 65534 (--uid; without root, a subordinate uid on the host), no capabilities, no new
privileges, a system call filter; of the host's files only the system folders and a few files of
/etc, read-only; a private /tmp and HOME; DIR (--workdir, default: the current folder) read-write,
and PATH (--bind read-write, --ro-bind read-only) at its own path, keyvalet's data folder and
master key file hidden in them. Its environment is what session create --env prints (proxy
variables with the task key, the CA bundle at ${SANDBOX_CA_FILE}: keyvalet's CA and this machine's
trusted CAs, placeholders, KEYVALET_GATEWAY with NO_PROXY for it), with PATH, HOME=${SANDBOX_HOME}, LANG and TERM, and nothing else.

Without --attach, keyvalet runs in this process for the duration (on loopback ports of its own);
with --attach FORWARD[,GATEWAY] the sandbox uses the listeners of a keyvalet already running on
the same configuration and data folder (without GATEWAY: listen.gateway, when it names a port).`

export const run: Command = {
  name: 'run',
  help,
  async run(args, io) {
    const split = args.indexOf('--')
    const command = split < 0 ? [] : args.slice(split + 1)
    const { values, positionals } = parse(split < 0 ? args : args.slice(0, split), {
      ...CONFIG_OPTION, ...SESSION_FLAGS,
      workdir: { type: 'string' }, uid: { type: 'string' }, attach: { type: 'string' },
      bind: { type: 'string', multiple: true }, 'ro-bind': { type: 'string', multiple: true },
    }, help)
    if (command.length === 0 || positionals.length > 0) throw new OperatorError('keyvalet run needs the command after --', 'e.g. keyvalet run --agent triage-bot --user alice --grant github:read -- python3 my_agent.py')
    const config = loadConfig(configPath(values.config, io))
    const mode = sandboxMode()
    const inside = parseIds(values.uid ?? '65534')
    const identity = sandboxIdentity(inside, mode === 'root')
    const attach = values.attach === undefined ? undefined : parseAttach(values.attach, config)
    const secrets = secretPaths(config, io.env)
    assertAnotherUid(identity, secrets)
    const opened: Bind[] = []
    const closers: (() => Promise<void> | void)[] = [() => closeBinds(opened)]
    try {
      const open = (path: string, writable: boolean, what: string, folder = false): Bind => {
        const b = openBind(resolve(io.cwd, path), writable, what, { folder })
        opened.push(b)
        if (b.path === '/') throw new OperatorError('keyvalet run does not bind / into the sandbox', 'name the folders the command needs')
        if (secrets.some((s) => within(b.path, s))) throw new OperatorError(`${b.path} is inside keyvalet's data folder or is its key file`, 'pass --workdir, --bind and --ro-bind with folders of the agent')
        return b
      }
      const workdir = open(values.workdir ?? '.', true, `--workdir ${values.workdir ?? '.'}`, true)
      const binds = [...(values.bind ?? []).map((p) => open(p, true, `--bind ${p}`)), ...(values['ro-bind'] ?? []).map((p) => open(p, false, `--ro-bind ${p}`))]
      await probeSandbox(mode, identity)

      const runtime = await openRuntime(config, { env: io.env, createMasterKey: attach === undefined, checkStore: attach === undefined, keepReads: attach === undefined })
      closers.unshift(() => runtime.close())
      if (!writableBy(workdir.path, identity.host)) write(io.stderr, `keyvalet run: warning: uid ${identity.host.uid} cannot write ${workdir.path} (give it to that uid: chown, chmod 0777 or an ACL; see docs/run.md)`)

      const proxy = attach === undefined
        ? await startInProcess(runtime, config, io, closers)
        : { ...attach, caPem: (await loadOrCreateCa(runtime.vault)).ca.certPem }
      const stateDir = mkdtempSync(join(tmpdir(), 'keyvalet-run-')) // 0700: only keyvalet's user reaches the sockets
      closers.unshift(() => rmSync(stateDir, { recursive: true, force: true }))
      // keyvalet's CA with this machine's trusted CAs (the sandbox sees its files): tunnelled hosts keep working.
      const caFile = join(stateDir, 'ca.pem')
      writeFileSync(caFile, trustBundle(proxy.caPem, baseCertificates('system')).pem, { mode: 0o644 })
      const linksDir = join(stateDir, 'links')
      mkdirSync(linksDir, { mode: 0o755 })
      for (const [name, target] of [['forward', proxy.forward], ['gateway', proxy.gateway]] as const) {
        if (target === undefined) continue
        const bridge = await startSocketBridge(join(linksDir, `${name}.sock`), target)
        closers.unshift(() => bridge.close())
      }

      const { session, key } = await createSession(runtime, { ...values, workspace: values.workspace ?? 'default' })
      let revoked = false
      const revoke = async (): Promise<void> => {
        if (!revoked) await runtime.sessions.revoke(session.id)
        revoked = true
      }
      closers.unshift(revoke)
      const as = mode === 'root' ? `uid ${inside.uid}, as root` : `uid ${inside.uid} (uid ${identity.host.uid} on the host), in a user namespace`
      write(io.stderr, `keyvalet run: session ${session.id} for ${session.agent} (user ${session.user}, workspace ${session.workspace}), expires ${new Date(session.expiresAt).toISOString()}; sandbox as ${as}, network: keyvalet only`)

      // As keyvalet start does once it listens: what start-up grew is given back before the command sends anything.
      releaseStartupMemory()
      const sandbox = startSandbox({ mode, identity, command, env: commandEnv(config, key, io.env, proxy.gateway !== undefined), workdir, binds, masks: [...secrets, stateDir], linksDir, caFile, stateDir })
      const forward = (signal: NodeJS.Signals): void => sandbox.signal(signal)
      for (const signal of SIGNALS) process.on(signal, forward)
      try {
        const code = await sandbox.exited
        await revoke()
        write(io.stderr, `keyvalet run: ${command[0]} exited with ${code}; task key of ${session.id} revoked`)
        return code
      } finally {
        for (const signal of SIGNALS) process.off(signal, forward)
      }
    } finally {
      for (const close of closers) await close()
    }
  },
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/** keyvalet for this run only: gateway and forward proxy on loopback ports of their own. */
async function startInProcess(runtime: Runtime, config: Config, io: Io, closers: (() => Promise<void> | void)[]) {
  const local: Config = { ...config, gateway: { host: '127.0.0.1', port: 0 }, forward: { host: '127.0.0.1', port: 0 } }
  // The command's stderr is the operator's: keyvalet only adds its warnings and errors to it.
  const log = createLogger(io.stderr, { level: 'warn' })
  const audit = await AuditWriter.start({ store: runtime.storeLocation, key: await runtime.openAuditKey(), reserveBytes: config.auditReserveBytes, log })
  closers.unshift(() => audit.close())
  const proxy = createProxy({ config: local, sessions: runtime.sessions, vault: runtime.vault, store: runtime.store, audit, log })
  const address = await proxy.listen()
  closers.unshift(() => proxy.close(2000))
  if (address.forwardUrl === undefined || address.caCertPem === undefined) throw new OperatorError('the forward proxy did not start')
  const at = (url: string) => ({ host: new URL(url).hostname, port: Number(new URL(url).port) })
  return { forward: at(address.forwardUrl), gateway: at(address.url), caPem: address.caCertPem }
}

/**
 * What session create --env prints, pointed at the sandbox's relays, plus a minimal
 * PATH/HOME/LANG/TERM. The gateway's relay has an address of its own (127.0.0.2), so NO_PROXY
 * naming it exempts nothing else.
 */
function commandEnv(config: Config, key: string, env: NodeJS.ProcessEnv, gateway: boolean): Record<string, string> {
  const vars: Record<string, string> = { PATH: SANDBOX_PATH, HOME: SANDBOX_HOME, LANG: env.LANG ?? 'C.UTF-8' }
  if (env.TERM !== undefined) vars.TERM = env.TERM
  const url = (at: { host: string; port: number }): URL => new URL(`http://${at.host}:${at.port}`)
  const inside: Config = { ...config, forward: SANDBOX_PROXY, gateway: SANDBOX_GATEWAY, forwardUrl: url(SANDBOX_PROXY), gatewayUrl: gateway ? url(SANDBOX_GATEWAY) : undefined }
  for (const line of sandboxEnv(inside, key, SANDBOX_CA_FILE)) if ('name' in line) vars[line.name] = line.value
  return vars
}

/** keyvalet's data folder and master key file: not visible at any path inside the sandbox. */
function secretPaths(config: Config, env: NodeJS.ProcessEnv): string[] {
  return [config.dataDir, env[MASTER_KEY_FILE_ENV]].filter((p): p is string => p !== undefined && p !== '').map(real)
}

function real(path: string): string {
  try {
    return realpathSync(path)
  } catch {
    return resolve(path)
  }
}

function writableBy(path: string, ids: { uid: number; gid: number }): boolean {
  const s = statSync(path)
  if (s.uid === ids.uid) return (s.mode & 0o200) !== 0
  if (s.gid === ids.gid) return (s.mode & 0o020) !== 0
  return (s.mode & 0o002) !== 0
}

function parseIds(text: string): { uid: number; gid: number } {
  const match = /^(\d+)(?::(\d+))?$/.exec(text)
  const uid = Number(match?.[1])
  const gid = Number(match?.[2] ?? match?.[1])
  if (match === null || uid > 0xfffffffe || gid > 0xfffffffe) throw new OperatorError(`--uid ${text} is not UID or UID:GID`)
  if (uid === 0 || gid === 0) throw new OperatorError('--uid 0: the sandbox never runs as root', 'use an unused uid, e.g. the default 65534 (nobody)')
  return { uid, gid }
}

/**
 * `--attach FORWARD[,GATEWAY]`: the listeners of a running keyvalet. Without GATEWAY, the
 * configuration's gateway address is used when it names a port (not 0); else the sandbox has the
 * forward proxy only.
 */
function parseAttach(text: string, config: Config): { forward: { host: string; port: number }; gateway: { host: string; port: number } | undefined } {
  const [forward, gateway, ...rest] = text.split(',')
  if (forward === undefined || rest.length > 0) throw new OperatorError(`--attach ${text} is not FORWARD[,GATEWAY]`)
  const fromConfig = config.gateway.port === 0 ? undefined : { host: ['0.0.0.0', '::'].includes(config.gateway.host) ? '127.0.0.1' : config.gateway.host, port: config.gateway.port }
  return { forward: hostPort(forward, text), gateway: gateway === undefined ? fromConfig : hostPort(gateway, text) }
}

function hostPort(part: string, text: string): { host: string; port: number } {
  const match = /^(?:http:\/\/)?(\[[0-9a-fA-F:.]+\]|[^:/\s]+):(\d{1,5})\/?$/.exec(part)
  const port = Number(match?.[2])
  if (match?.[1] === undefined || port < 1 || port > 65535) throw new OperatorError(`--attach ${text} is not HOST:PORT[,HOST:PORT]`, 'the forward listener (and optionally the gateway) of a running keyvalet, e.g. --attach 127.0.0.1:8789,127.0.0.1:8787')
  return { host: match[1].replace(/^\[|\]$/g, ''), port }
}

