/**
 * pid 1 of a `keyvalet run` sandbox, already without privileges: listens on the sandbox's own
 * loopback (RELAY_PORT) and pipes each connection to keyvalet's Unix socket, the sandbox's only
 * way out; then starts the command, forwards SIGINT, SIGTERM and SIGHUP to it, and exits with its
 * exit code (128 + the signal number when a signal killed it). When pid 1 exits, the kernel kills
 * whatever else is left in the sandbox. Only node: builtins: this file runs inside the sandbox.
 *
 * usage: node relay.ts SOCKET -- COMMAND [ARG]...
 */
import { spawn } from 'node:child_process'
import { connect, createServer } from 'node:net'
import { constants } from 'node:os'

export const RELAY_PORT = 8789

function main(argv: string[]): void {
  const [socketPath, dashes, command, ...args] = argv
  if (socketPath === undefined || dashes !== '--' || command === undefined) {
    process.stderr.write('usage: relay.ts SOCKET -- COMMAND [ARG]...\n')
    process.exit(2)
  }
  const relay = createServer((inside) => {
    const outside = connect(socketPath)
    inside.on('error', () => outside.destroy())
    outside.on('error', () => inside.destroy())
    inside.pipe(outside).pipe(inside)
  })
  relay.on('error', (err) => fail(`cannot listen on 127.0.0.1:${RELAY_PORT}: ${err.message}`))
  // Handlers first: as pid 1, this process gets no signal it has no handler for, and the command
  // may run (and be signalled through keyvalet) before spawn returns. A signal that arrives before
  // the command exists is delivered to it as soon as it does.
  let child: ReturnType<typeof spawn> | undefined
  const pending: NodeJS.Signals[] = []
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => (child === undefined ? pending.push(signal) : child.kill(signal)))
  }
  relay.listen(RELAY_PORT, '127.0.0.1', () => {
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
