/**
 * pid 1 of a `keyvalet run` sandbox, already without privileges: listens on ports of the
 * sandbox's own loopback (the forward proxy's, the gateway's) and pipes each connection to the
 * matching Unix socket of keyvalet, the sandbox's only ways out; then starts the command, forwards SIGINT, SIGTERM and SIGHUP to it, and exits with its
 * exit code (128 + the signal number when a signal killed it). When pid 1 exits, the kernel kills
 * whatever else is left in the sandbox. Only node: builtins: this file runs inside the sandbox.
 *
 * usage: node relay.ts ADDRESS:PORT=SOCKET [ADDRESS:PORT=SOCKET]... -- COMMAND [ARG]...
 */
import { spawn } from 'node:child_process'
import { connect, createServer } from 'node:net'
import { constants } from 'node:os'

function main(argv: string[]): void {
  const split = argv.indexOf('--')
  const links = (split < 0 ? [] : argv.slice(0, split)).map((a) => /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}):(\d{1,5})=(\/.+)$/.exec(a))
  const [command, ...args] = split < 0 ? [] : argv.slice(split + 1)
  if (links.length === 0 || links.some((l) => l === null) || command === undefined) {
    process.stderr.write('usage: relay.ts ADDRESS:PORT=SOCKET [ADDRESS:PORT=SOCKET]... -- COMMAND [ARG]...\n')
    process.exit(2)
  }
  // Handlers first: as pid 1, this process gets no signal it has no handler for, and the command
  // may run (and be signalled through keyvalet) before spawn returns. A signal that arrives before
  // the command exists is delivered to it as soon as it does.
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

function fail(message: string, code = 1): never {
  process.stderr.write(`keyvalet sandbox: ${message}\n`)
  process.exit(code)
}

main(process.argv.slice(2))
