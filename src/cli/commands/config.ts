import { readFileSync } from 'node:fs'
import { hostname, userInfo } from 'node:os'
import { resolve } from 'node:path'
import { loadConfig } from '../../config/load.ts'
import { parsePolicyFile, policyDigest, withPolicy } from '../../config/policy-file.ts'
import { pushMac, verifyPush } from '../../config/push-mac.ts'
import { RELOADABLE } from '../../config/reloadable.ts'
import { OperatorError } from '../../errors.ts'
import { openRuntime } from '../../runtime.ts'
import { CONFIG_OPTION, configPath, parse, write } from '../args.ts'
import type { Command, Io } from '../command.ts'

const help = `usage: keyvalet config push POLICY [--config FILE]
       keyvalet config pushed [--limit N] [--config FILE]

  push     stores POLICY for every instance of the fleet that follows pushed policies
           (fleet.policy: pushed): they put it in force over their own file within a second.
           POLICY is YAML holding only ${RELOADABLE.join(', ')};
           anything else is refused. It is first merged over FILE and checked as keyvalet check
           would (nothing is stored on an error), then stored with the next sequence number and
           a MAC under a key derived from the master key: an instance applies only a push that
           verifies, so the database password alone cannot push a policy. Run it on a host that
           holds the master key; it is deliberately not an admin API call (whoever can write the
           database can make an admin token).
  pushed   the latest pushes, newest first, and whether each verifies under this host's master key.

docs/deploy.md, "Configuration in a fleet", describes both modes.`

export const config: Command = {
  name: 'config',
  help,
  async run(args, io) {
    const { values, positionals } = parse(args, { ...CONFIG_OPTION, limit: { type: 'string' } }, help)
    const [action, policyFile, ...rest] = positionals
    if (action === 'push') {
      if (policyFile === undefined || rest.length > 0) throw new OperatorError('config push takes one policy file', 'keyvalet config push POLICY.yaml [--config keyvalet.yaml]')
      return push(resolve(io.cwd, policyFile), configPath(values.config, io), io)
    }
    if (action === 'pushed' && policyFile === undefined) return pushed(configPath(values.config, io), limitOf(values.limit), io)
    throw new OperatorError(`unknown action ${JSON.stringify(action ?? '')}`, 'use: keyvalet config push POLICY | pushed')
  },
}

async function push(policyFile: string, configFile: string, io: Io): Promise<number> {
  let text: string
  try {
    text = readFileSync(policyFile, 'utf8')
  } catch (err) {
    throw new OperatorError(`${policyFile}: cannot read the policy file (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'name the policy file to push', { cause: err })
  }
  parsePolicyFile(text, policyFile)
  const local = loadConfig(configFile)
  // Exactly what an instance with this file will load: every problem is thrown before anything is stored.
  const merged = withPolicy(local.file, { text, name: policyFile, seq: undefined })
  for (const w of merged.warnings) write(io.stdout, `warning: ${w.path}: ${w.message}`)
  const runtime = await openRuntime(local, { env: io.env, createMasterKey: false })
  try {
    const master = runtime.master
    const sha256 = policyDigest(text)
    const pushedBy = `${userInfo().username}@${hostname()}`
    const row = await runtime.store.pushedConfigs.push((seq) => {
      const covered = { seq, sha256, pushedAt: Date.now(), pushedBy }
      return { ...covered, text, keyId: master.keyId, mac: pushMac(master, covered) }
    })
    write(io.stdout, `pushed policy ${row.seq} (sha256 ${sha256.slice(0, 16)}…, MAC under master key ${master.keyId}); on this host it makes configuration ${merged.version}`)
    return 0
  } finally {
    await runtime.close()
  }
}

async function pushed(configFile: string, limit: number, io: Io): Promise<number> {
  const runtime = await openRuntime(loadConfig(configFile), { env: io.env, createMasterKey: false })
  try {
    const rows = await runtime.store.pushedConfigs.list(limit)
    if (rows.length === 0) write(io.stdout, 'no policy has been pushed to this store')
    for (const row of rows) {
      const verdict = verifyPush(runtime.master, row)
      write(io.stdout, `${row.seq}  ${new Date(row.pushedAt).toISOString()}  ${row.pushedBy}  sha256 ${row.sha256.slice(0, 16)}…  ${verdict.ok ? `verifies (master key ${row.keyId})` : `REFUSED: ${verdict.why}`}`)
    }
    return 0
  } finally {
    await runtime.close()
  }
}

function limitOf(value: string | boolean | undefined): number {
  if (value === undefined) return 10
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new OperatorError('--limit must be a whole number from 1 to 1000', 'e.g. --limit 20')
  return n
}
