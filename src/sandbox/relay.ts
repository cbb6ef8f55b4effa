/**
 * The first process of a `keyvalet run` sandbox (pid 2, under bubblewrap's pid 1), already without
 * privileges: closes inherited descriptors, creates HOME (private, 0700), listens on ports of the sandbox's own loopback (the
 * forward proxy's, the gateway's) and pipes each connection to the matching Unix socket of
 * keyvalet, the sandbox's only ways out; then starts the command, forwards SIGINT, SIGTERM and
 * SIGHUP to it, and exits with its exit code (128 + the signal number when a signal killed it).
 * When it exits, the sandbox ends and the kernel kills whatever else is left in it. A set-up
 * failure exits 125, before the command runs. Only node: builtins: this file runs inside the sandbox.
 *
 * usage: node relay.ts ADDRESS:PORT=SOCKET [ADDRESS:PORT=SOCKET]... -- COMMAND [ARG]...
 */
import { spawn } from 'node:child_process'
import { closeSync, mkdirSync, readdirSync, readFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { constants } from 'node:os'

const SETUP_FAILED = 125
const O_CLOEXEC = 0o2000000

function main(argv: string[]): void {
  closeInherited()
  const split = argv.indexOf('--')
  const links = (split < 0 ? [] : argv.slice(0, split)).map((a) => /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}):(\d{1,5})=(\/.+)$/.exec(a))
  const [command, ...args] = split < 0 ? [] : argv.slice(split + 1)
  if (links.length === 0 || links.some((l) => l === null) || command === undefined) {
    process.stderr.write('usage: relay.ts ADDRESS:PORT=SOCKET [ADDRESS:PORT=SOCKET]... -- COMMAND [ARG]...\n')
    process.exit(2)
  }
  const home = process.env.HOME
  if (home !== undefined) {
    try {
      mkdirSync(home, { recursive: true, mode: 0o700 })
    } catch (err) {
      fail(`cannot create HOME ${home}: ${(err as Error).message}`)
    }
  }
  // Handlers first: the command may run (and be signalled through keyvalet) before spawn returns.
  // A signal that arrives before the command exists is delivered to it as soon as it does.
  let child: ReturnType<typeof spawn> | undefined
  const pending: NodeJS.Signals[] = []
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => (child === undefined ? pending.push(signal) : child.kill(signal)))
  }
  const listening = (links as RegExpExecArray[]).map(([, address, port, socketPath]) => new Promise<void>((resolve) => {
    const relay = createServer((inside) => {
      const outside = connect(socketPath as string)
      inside.on('error', () => outside.destroy())
      outside.on('error', () => inside.destroy())
      inside.pipe(outside).pipe(inside)
    })
    relay.on('error', (err) => fail(`cannot listen on ${address}:${port}: ${err.message}`))
    relay.listen(Number(port), address, resolve)
  }))
  void Promise.all(listening).then(() => {
    child = spawn(command, args, { stdio: 'inherit' })
    child.on('error', (err) => fail(`cannot start ${command}: ${err.message}`, 127))
    child.on('exit', (code, signal) => process.exit(code ?? 128 + (signal === null ? 0 : constants.signals[signal])))
    for (const signal of pending) child.kill(signal)
  })
}

/**
 * Descriptors that came from outside (whatever keyvalet's own parent left open passes through
 * keyvalet and bubblewrap): closed, so that the command gets only its standard input and output.
 * Node's own descriptors are all close-on-exec.
 */
function closeInherited(): void {
  for (const entry of readdirSync('/proc/self/fdinfo')) {
    const fd = Number(entry)
    if (!(fd > 2)) continue
    let flags: number
    try {
      flags = parseInt(/^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1] ?? '', 8)
    } catch {
      continue // the listing's own descriptor, already closed
    }
    if ((flags & O_CLOEXEC) === 0) closeSync(fd)
  }
}

function fail(message: string, code = SETUP_FAILED): never {
  process.stderr.write(`keyvalet sandbox: ${message}\n`)
  process.exit(code)
}

main(process.argv.slice(2))
