import { readFileSync } from 'node:fs'
import { OperatorError } from '../errors.ts'
import type { Command, Io } from './command.ts'
import { admin } from './commands/admin.ts'
import { assertion } from './commands/assertion.ts'
import { audit } from './commands/audit.ts'
import { ca } from './commands/ca.ts'
import { check } from './commands/check.ts'
import { db } from './commands/db.ts'
import { demo } from './commands/demo.ts'
import { oauth } from './commands/oauth.ts'
import { run } from './commands/run.ts'
import { secret } from './commands/secret.ts'
import { session } from './commands/session.ts'
import { approvals } from './commands/approvals.ts'
import { start } from './commands/start.ts'
import { suggest } from './commands/suggest.ts'
import { vault } from './commands/vault.ts'

const COMMANDS: readonly Command[] = [start, run, demo, check, secret, session, approvals, oauth, audit, suggest, db, ca, vault, assertion, admin]

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length))
  return ['usage: keyvalet <command> [options]   (keyvalet <command> --help for details; keyvalet --version)', '', ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`)].join('\n')
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
}

/** argv → command; returns the exit code. Operator errors print as one line plus a hint, no stack. */
export async function main(argv: string[], io: Io): Promise<number> {
  const [name, ...args] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(`${usage()}\n`)
    return name === undefined ? 2 : 0
  }
  if (name === '--version' || name === '-V') {
    io.stdout.write(`keyvalet ${packageVersion()}\n`)
    return 0
  }
  const command = COMMANDS.find((c) => c.name === name)
  if (command === undefined) {
    io.stderr.write(`keyvalet: unknown command ${JSON.stringify(name)}\n${usage()}\n`)
    return 2
  }
  if (args.includes('--help') || args.includes('-h')) {
    io.stdout.write(`${command.help}\n`)
    return 0
  }
  try {
    return await command.run(args, io)
  } catch (err) {
    if (err instanceof OperatorError) {
      io.stderr.write(`keyvalet ${name}: ${err.message}\n${err.hint === undefined ? '' : `hint: ${err.hint}\n`}`)
      return 1
    }
    io.stderr.write(`keyvalet ${name}: unexpected error: ${err instanceof Error ? err.message : String(err)}\n`)
    return 70
  }
}

if (import.meta.main) {
  const major = Number(process.versions.node.split('.')[0])
  if (major < 24) {
    process.stderr.write(`keyvalet needs Node.js 24 or newer (this is ${process.version}); run it through npm or ./bin/keyvalet, which use the pinned Node 24\n`)
    process.exit(1)
  }
  const code = await main(process.argv.slice(2), { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() })
  process.exitCode = code
}
