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
  relay.listen(RELAY_PORT, '127.0.0.1', () => {
    const child = spawn(command, args, { stdio: 'inherit' })
    child.on('error', (err) => fail(`cannot start ${command}: ${err.message}`, 127))
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => child.kill(signal))
    child.on('exit', (code, signal) => process.exit(code ?? 128 + (signal === null ? 0 : constants.signals[signal])))
  })
}

function fail(message: string, code = 1): never {
  process.stderr.write(`keyvalet sandbox: ${message}\n`)
  process.exit(code)
}

main(process.argv.slice(2))
