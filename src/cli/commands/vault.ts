import { setTimeout as sleep } from 'node:timers/promises'
import { loadConfig } from '../../config/load.ts'
import { OperatorError } from '../../errors.ts'
import { remacPushes } from '../../config/push-mac.ts'
import { openRuntime, type Runtime } from '../../runtime.ts'
import { generateMasterKey, loadMasterKey, MASTER_KEY_ENV, MASTER_KEY_FILE_ENV, writeKeyFile } from '../../vault/master-key.ts'
import { CONFIG_OPTION, configPath, parse, write } from '../args.ts'
import type { Command, Io } from '../command.ts'

const help = `usage: keyvalet vault <status|rotate-master-key> [--config FILE]

  status              the master key's id and how many records each key id seals
  rotate-master-key   make a new master key and re-wrap every record's data key under it, while
                      keyvalet serves: the key file is rewritten to hold the new key and the old
                      one, every record is re-wrapped (values are never decrypted), and then the
                      old key is dropped from the file. A running keyvalet follows the key file
                      by itself. Needs the key in a file (the default <data_dir>/master.key or
                      ${MASTER_KEY_FILE_ENV}), not in ${MASTER_KEY_ENV}. Re-running it finishes an
                      interrupted rotation. Back up the new key file afterwards.`

/** Time for a write that began under the old key, in another process, to land before the last check. */
const SETTLE_MS = 1_000

export const vault: Command = {
  name: 'vault',
  help,
  async run(args, io) {
    const { values, positionals } = parse(args, { ...CONFIG_OPTION }, help)
    const [action] = positionals
    const config = loadConfig(configPath(values.config, io))
    if (action === 'status') return status(config, io)
    if (action === 'rotate-master-key') return rotate(config, io)
    throw new OperatorError(`unknown action ${JSON.stringify(action ?? '')}`, 'use: keyvalet vault status | rotate-master-key')
  },
}

async function status(config: ReturnType<typeof loadConfig>, io: Io): Promise<number> {
  const runtime = await openRuntime(config, { env: io.env, createMasterKey: false })
  try {
    write(io.stdout, `master key ${runtime.master.keyId} (${runtime.master.source})${runtime.master.previous.length > 0 ? `; previous key ${runtime.master.previous.map((k) => k.keyId).join(', ')} still accepted (a rotation is unfinished)` : ''}`)
    for (const [keyId, count] of await countByKey(runtime)) write(io.stdout, `  ${count} record(s) sealed under ${keyId}`)
    return 0
  } finally {
    await runtime.close()
  }
}

async function rotate(config: ReturnType<typeof loadConfig>, io: Io): Promise<number> {
  const before = loadMasterKey({ env: io.env, dataDir: config.dataDir, create: false })
  const file = before.file
  if (file === undefined) {
    throw new OperatorError(
      `the master key comes from ${MASTER_KEY_ENV}, which a running keyvalet cannot see change`,
      `put the key in a file readable only by keyvalet and point ${MASTER_KEY_FILE_ENV} at it, restart keyvalet, then rotate`,
    )
  }
  if (before.previous.length === 0) {
    const fresh = generateMasterKey()
    writeKeyFile(file, [fresh, before.key])
    fresh.fill(0)
  } else {
    write(io.stdout, `finishing the unfinished rotation to ${before.keyId}`)
  }
  const runtime = await openRuntime(config, { env: io.env, createMasterKey: false })
  try {
    const target = runtime.master.keyId
    let rewrapped = 0
    for (let pass = 0; pass < 3; pass++) {
      if (pass > 0) await sleep(SETTLE_MS)
      const stale = (await runtime.vault.list()).filter((r) => r.keyId !== target)
      if (stale.length === 0) break
      for (const record of stale) if (await runtime.vault.rewrap(record.name)) rewrapped++
    }
    // One more look after the settle time: a process that sealed under the old key just before
    // the file changed has landed by now.
    await sleep(SETTLE_MS)
    const left = (await runtime.vault.list()).filter((r) => r.keyId !== target)
    if (left.length > 0) {
      throw new OperatorError(`${left.length} record(s) are still sealed under the old key; the old key stays in ${file}`, 'run keyvalet vault rotate-master-key again')
    }
    const pushes = await remacPushes(runtime.store.pushedConfigs, runtime.master)
    writeKeyFile(file, [runtime.master.key])
    const from = before.previous.length === 0 ? before.keyId : before.previous.map((k) => k.keyId).join(', ')
    write(io.stdout, `master key rotated: ${from} → ${target}; ${rewrapped} record(s) re-wrapped, ${pushes.remacced} pushed polic${pushes.remacced === 1 ? 'y' : 'ies'} re-MACed${pushes.refused === 0 ? '' : ` (${pushes.refused} that did not verify left as they were)`}; ${file} now holds only the new key (back it up)`)
    return 0
  } finally {
    await runtime.close()
  }
}

async function countByKey(runtime: Runtime): Promise<Map<string, number>> {
  const counts = new Map<string, number>()
  for (const r of await runtime.vault.list()) counts.set(r.keyId, (counts.get(r.keyId) ?? 0) + 1)
  return counts
}
