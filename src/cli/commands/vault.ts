import { setTimeout as sleep } from 'node:timers/promises'
import { loadConfig } from '../../config/load.ts'
import { OperatorError } from '../../errors.ts'
import { remacPushes } from '../../config/push-mac.ts'
import { openRuntime, type Runtime } from '../../runtime.ts'
import { INSTANCE_STALE_MS } from '../../config/instance-report.ts'
import type { InstanceRepo } from '../../store/store.ts'
import { generateMasterKey, loadMasterKey, MASTER_KEY_ENV, MASTER_KEY_FILE_ENV, masterKey, writeKeyFile } from '../../vault/master-key.ts'
import { decideRotation, type RotationVerdict } from '../../vault/rotation-guard.ts'
import { CONFIG_OPTION, configPath, parse, write } from '../args.ts'
import type { Command, Io } from '../command.ts'

/** Time for a write that began under the old key, in another process, to land before the last check. */
const SETTLE_MS = 1_000
/** How long rotate-master-key waits, by default, for every running instance to hold the new key. */
const DEFAULT_FLEET_WAIT_S = 5
const FLEET_POLL_MS = 200

const help = `usage: keyvalet vault <status|rotate-master-key [--wait SECONDS] [--force]> [--config FILE]

  status              the master key's id and how many records each key id seals
  rotate-master-key   make a new master key and re-wrap every record's data key under it, while
                      keyvalet serves: the key file is rewritten to hold the new key and the old
                      one, every record is re-wrapped (values are never decrypted), and then the
                      old key is dropped from the file. A running keyvalet follows the key file
                      by itself. Needs the key in a file (the default <data_dir>/master.key or
                      ${MASTER_KEY_FILE_ENV}), not in ${MASTER_KEY_ENV}. Re-running it finishes an
                      interrupted rotation. Back up the new key file afterwards.
                      Refuses, changing nothing, while a running instance on this store (one
                      heard from in the last ${INSTANCE_STALE_MS / 1000} s) does not hold the new key: it stages
                      the new key in the file first and waits up to --wait seconds (default
                      ${DEFAULT_FLEET_WAIT_S}) for every instance to report holding it. Instances
                      with their own key file need the new key staged in it first (docs/deploy.md).
                      --force re-wraps anyway, naming the instances left behind.`


export const vault: Command = {
  name: 'vault',
  help,
  async run(args, io) {
    const { values, positionals } = parse(args, { ...CONFIG_OPTION, wait: { type: 'string' }, force: { type: 'boolean' } }, help)
    const [action] = positionals
    const config = loadConfig(configPath(values.config, io))
    if (action === 'status') return status(config, io)
    if (action === 'rotate-master-key') return rotate(config, io, { waitMs: waitSeconds(values.wait) * 1000, force: values.force === true })
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

async function rotate(config: ReturnType<typeof loadConfig>, io: Io, opts: { readonly waitMs: number; readonly force: boolean }): Promise<number> {
  const before = loadMasterKey({ env: io.env, dataDir: config.dataDir, create: false })
  const file = before.file
  if (file === undefined) {
    throw new OperatorError(
      `the master key comes from ${MASTER_KEY_ENV}, which a running keyvalet cannot see change`,
      `put the key in a file readable only by keyvalet and point ${MASTER_KEY_FILE_ENV} at it, restart keyvalet, then rotate`,
    )
  }
  const staging = before.previous.length === 0
  // A new key is staged first as the file's second line: every instance reading this file holds
  // it (and says so) while still sealing under the current key, so that refusing leaves nothing
  // sealed under it. A key already staged by the operator (new key first) is checked as it is.
  const next = staging ? generateMasterKey() : Buffer.from(before.key)
  const nextId = masterKey(next, 'new', false).keyId
  if (staging) writeKeyFile(file, [before.key, next])
  else write(io.stdout, `finishing the unfinished rotation to ${before.keyId}`)
  // Until the new key is made current, any failure (a refusal, the store unreachable) takes the staged key out again.
  let made = !staging
  try {
    const runtime = await openRuntime(config, { env: io.env, createMasterKey: false })
    try {
      const verdict = await fleetHolding(runtime.store.instances, nextId, opts.waitMs)
      if (!verdict.allow) {
        const names = verdict.unready.map((u) => `\n  ${u.instance} on ${u.host} (pid ${u.pid}): ${u.why}`).join('')
        if (!opts.force) {
          throw new OperatorError(
            `not rotating: ${verdict.unready.length} running instance(s) do not hold the new master key ${nextId} after ${opts.waitMs / 1000} s, and could not open the records once they are re-wrapped under it (nothing was re-wrapped${staging ? `; ${file} holds only the current key again` : ''}):${names}`,
            'stage the new key in every instance\'s key file first (a file holding the new key, then the current one, e.g. from openssl rand -base64 32), roll the instances, then run keyvalet vault rotate-master-key again; see docs/deploy.md, "Master-key rotation in a fleet" (--force re-wraps anyway)',
          )
        }
        write(io.stderr, `warning: --force: re-wrapping although ${verdict.unready.length} running instance(s) do not hold the new master key ${nextId}; they will answer credential_unavailable (master_key_mismatch) until they do:${names}`)
      }
      if (staging) writeKeyFile(file, [next, before.key])
      made = true
      runtime.vault.followKeyFile()
      const rewrapped = await rewrapAll(runtime, nextId, file)
      // Pushed policies are MACed under the master key (config/push-mac.ts): under the new one before the old one leaves the file.
      const keys = runtime.masterKeys()
      if (keys.keyId !== nextId) throw new OperatorError(`the key file ${file} changed during the rotation`, 'make sure one rotation runs at a time, then run it again')
      const pushes = await remacPushes(runtime.store.pushedConfigs, keys)
      writeKeyFile(file, [next])
      const from = staging ? before.keyId : before.previous.map((k) => k.keyId).join(', ')
      // The file's other key sealed nothing: a rotation that had re-wrapped everything, or one stopped
      // while staging its new key (then the key file looks the same). Kept the current key either way:
      // taking the other would be going back to a key being rotated away from, in the first case.
      if (!staging && rewrapped === 0) {
        write(io.stdout, `master key ${nextId} kept: nothing was sealed under the other key in ${file} (${from}), now dropped from it; if a rotation was stopped while staging its new key, no rotation happened: run keyvalet vault rotate-master-key again`)
        return 0
      }
      write(io.stdout, `master key rotated: ${from} → ${nextId}; ${rewrapped} record(s) re-wrapped, ${pushes.remacced} pushed polic${pushes.remacced === 1 ? 'y' : 'ies'} re-MACed${pushes.refused === 0 ? '' : ` (${pushes.refused} that did not verify left as they were)`}; ${file} now holds only the new key (back it up)`)
      return 0
    } finally {
      await runtime.close()
    }
  } finally {
    if (!made) writeKeyFile(file, [before.key])
    next.fill(0)
  }
}

/** Re-wraps every record not sealed under `target` (the vault's current key); throws when some are left after the settle time. */
async function rewrapAll(runtime: Runtime, target: string, file: string): Promise<number> {
  if (runtime.vault.keyId !== target) throw new OperatorError(`the key file ${file} changed during the rotation`, 'make sure one rotation runs at a time, then run it again')
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
  return rewrapped
}

/**
 * The rotation guard's verdict (vault/rotation-guard.ts) on the instances heard from within
 * INSTANCE_STALE_MS, asked again every FLEET_POLL_MS until it allows or `waitMs` has passed:
 * instances sharing the key file report holding a staged key within KEY_FILE_POLL_MS.
 */
async function fleetHolding(instances: InstanceRepo, keyId: string, waitMs: number): Promise<RotationVerdict> {
  const deadline = Date.now() + waitMs
  for (;;) {
    const verdict = decideRotation(await instances.list(Date.now() - INSTANCE_STALE_MS), keyId)
    if (verdict.allow || Date.now() >= deadline) return verdict
    await sleep(Math.min(FLEET_POLL_MS, Math.max(0, deadline - Date.now())))
  }
}

function waitSeconds(text: string | undefined): number {
  if (text === undefined) return DEFAULT_FLEET_WAIT_S
  const seconds = Number(text)
  if (!/^\d+(\.\d+)?$/.test(text) || seconds > 600) throw new OperatorError(`--wait ${JSON.stringify(text)} is not a number of seconds from 0 to 600`, 'e.g. --wait 10')
  return seconds
}

async function countByKey(runtime: Runtime): Promise<Map<string, number>> {
  const counts = new Map<string, number>()
  for (const r of await runtime.vault.list()) counts.set(r.keyId, (counts.get(r.keyId) ?? 0) + 1)
  return counts
}
