import { readFileSync } from 'node:fs'
import { OperatorError } from '../errors.ts'
import type { Command, Io } from './command.ts'

/**
 * Every command by name and summary; a command's module (and all it imports) is loaded only when
 * that command runs or prints its help, so that `keyvalet start` does not hold the others in memory.
 */
interface CommandEntry {
  readonly name: string
  readonly summary: string
  load(): Promise<Command>
}

const COMMANDS: readonly CommandEntry[] = [
  { name: 'start', summary: 'run the gateway', load: async () => (await import('./commands/start.ts')).start },
  { name: 'run', summary: 'run a command in a sandbox whose only way out is keyvalet', load: async () => (await import('./commands/run.ts')).run },
  { name: 'demo', summary: 'see the whole flow offline in one command', load: async () => (await import('./commands/demo.ts')).demo },
  { name: 'check', summary: 'validate a configuration and warn about dangerous rules', load: async () => (await import('./commands/check.ts')).check },
  { name: 'config', summary: 'push a policy to every instance of a fleet, and list the pushes', load: async () => (await import('./commands/config.ts')).config },
  { name: 'secret', summary: 'store credentials in the encrypted vault (write-only)', load: async () => (await import('./commands/secret.ts')).secret },
  { name: 'session', summary: 'mint, list and revoke task keys', load: async () => (await import('./commands/session.ts')).session },
  { name: 'approvals', summary: 'list, approve and deny requests waiting for a person', load: async () => (await import('./commands/approvals.ts')).approvals },
  { name: 'oauth', summary: "connect users' OAuth accounts (oauth_user connectors), list and remove them", load: async () => (await import('./commands/oauth.ts')).oauth },
  { name: 'audit', summary: 'read and verify the tamper-evident audit log', load: async () => (await import('./commands/audit.ts')).audit },
  { name: 'explain', summary: 'what the policy decides for one request under a grant, step by step (nothing is sent)', load: async () => (await import('./commands/explain.ts')).explain },
  { name: 'replay', summary: 'decide the requests in the audit again under a new configuration and show what changes', load: async () => (await import('./commands/replay.ts')).replay },
  { name: 'suggest', summary: 'draft rules from the denials in the audit (printed, never applied)', load: async () => (await import('./commands/suggest.ts')).suggest },
  { name: 'db', summary: "check, migrate, inspect or move keyvalet's store (SQLite files or PostgreSQL)", load: async () => (await import('./commands/db.ts')).db },
  { name: 'ca', summary: "print the interception CA, or the CA bundle sandboxes trust", load: async () => (await import('./commands/ca.ts')).ca },
  { name: 'vault', summary: 'master key status and rotation', load: async () => (await import('./commands/vault.ts')).vault },
  { name: 'assertion', summary: 'rotate or print the keys that sign user assertions (JWKS)', load: async () => (await import('./commands/assertion.ts')).assertion },
  { name: 'admin', summary: 'mint, list and revoke admin API tokens', load: async () => (await import('./commands/admin.ts')).admin },
]

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
  const entry = COMMANDS.find((c) => c.name === name)
  if (entry === undefined) {
    io.stderr.write(`keyvalet: unknown command ${JSON.stringify(name)}\n${usage()}\n`)
    return 2
  }
  const command = await entry.load()
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

/** The process's command line as a command: what entry.mjs (bin/keyvalet, the image) runs, and this file run directly. */
export async function runMain(): Promise<void> {
  const major = Number(process.versions.node.split('.')[0])
  if (major < 24) {
    process.stderr.write(`keyvalet needs Node.js 24 or newer (this is ${process.version}); run it through npm or ./bin/keyvalet, which use the pinned Node 24\n`)
    process.exit(1)
  }
  const code = await main(process.argv.slice(2), { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() })
  process.exitCode = code
}

if (import.meta.main) await runMain()
