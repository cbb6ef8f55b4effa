/**
 * An instance that follows pushed policies (fleet.policy: pushed; docs/deploy.md, "Configuration
 * in a fleet"). The algorithm, at start and whenever the store says a push may have happened (a
 * notification on PostgreSQL, a re-started LISTEN) and every `pollMs` besides (SQLite across
 * processes has no notification; on PostgreSQL it is the backstop):
 *
 *   1. Look at the highest sequence number stored; nothing newer than the push in force: done.
 *   2. Read the newest pushes, newest first; skip those not newer than the one in force and those
 *      already tried. Verify each (push-mac.ts): one that fails is refused — logged as an error,
 *      counted, never applied — and the next older one is looked at.
 *   3. Put the first that verifies in force through LiveConfig.push (all or nothing, like a
 *      reload); it is tried once: if it does not apply on this host, the configuration in force
 *      stays and the failure is logged.
 *
 * A sequence number lower than the one in force is never applied: when the newest push stored is
 * older than the one in force (newer rows were deleted), that is logged and nothing changes.
 */

import type { Logger } from '../log.ts'
import type { PushedConfig, PushedConfigRepo } from '../store/pushed-config-repo.ts'
import type { MasterKey } from '../vault/master-key.ts'
import { withPolicy, type PolicyOverlay } from './policy-file.ts'
import type { Config } from './load.ts'
import { verifyPush } from './push-mac.ts'
import type { LiveConfig } from './reload.ts'

/** How many of the newest pushes are looked at for one that verifies. */
const LOOK_BACK = 10

export interface PushedFollowerOptions {
  readonly repo: PushedConfigRepo
  /** The store's "a push may have been stored" signal (Store.pushedConfigSignals), when it has one. */
  readonly signals: ((listener: () => void) => () => void) | undefined
  /** The master key now (with the previous one during a rotation), following its file. */
  readonly master: () => MasterKey
  readonly log: Logger
  readonly pollMs: number
  /** Told of every push refused (metrics). */
  readonly onRefused?: (seq: number) => void
}

export function overlayOf(row: PushedConfig): PolicyOverlay {
  return { text: row.text, name: `pushed policy ${row.seq}`, seq: row.seq }
}

/**
 * The configuration to start under: `file` with the newest push that verifies over it, or `file`
 * alone when there is none (or it does not load here: logged). Returns the overlay with it.
 */
export async function startingConfig(file: Config, opts: PushedFollowerOptions): Promise<{ config: Config; overlay: PolicyOverlay | undefined }> {
  const refused = new Set<number>()
  for (const row of await opts.repo.list(LOOK_BACK)) {
    if (!verified(row, opts, refused)) continue
    const overlay = overlayOf(row)
    try {
      const config = withPolicy(file.file, overlay)
      opts.log.info('serving under the pushed policy', { pushed: row.seq, version: config.version, pushed_by: row.pushedBy, pushed_at: new Date(row.pushedAt).toISOString() })
      return { config, overlay }
    } catch (err) {
      opts.log.error('the newest pushed policy does not load on this host: serving under the configuration file alone', { pushed: row.seq, problems: (err instanceof Error ? err.message : String(err)).split('\n') })
      return { config: file, overlay: undefined }
    }
  }
  opts.log.info('no pushed policy that verifies in the store: serving under the configuration file alone', { version: file.version })
  return { config: file, overlay: undefined }
}

export interface PushedFollower {
  /** Looks now (resolves when done); never throws. */
  check(): Promise<void>
  close(): void
}

/** Follows pushes for `live` (see the algorithm above) until closed. */
export function followPushes(live: LiveConfig, opts: PushedFollowerOptions): PushedFollower {
  const refused = new Set<number>()
  /** Pushes tried (applied or failed here): not tried again. */
  const tried = new Set<number>()
  let rollbackSeen = 0
  /** The newest sequence number whose pushes were all looked at: nothing to read again until a newer one. */
  let examined = 0
  let failing = false
  let running: Promise<void> | undefined
  let again = false

  const look = async (): Promise<void> => {
    const inForce = live.current.pushed?.seq ?? 0
    const newest = await opts.repo.latestSeq()
    if (newest < inForce && newest !== rollbackSeen) {
      rollbackSeen = newest
      opts.log.error('the newest pushed policy in the store is older than the one in force (newer pushes were deleted): keeping the one in force', { pushed: inForce, newest_stored: newest })
    }
    if (newest <= inForce || newest <= examined) return
    for (const row of await opts.repo.list(LOOK_BACK)) {
      if (row.seq <= inForce || tried.has(row.seq) || !verified(row, opts, refused)) continue
      tried.add(row.seq)
      await live.push(overlayOf(row))
      break
    }
    examined = newest
  }
  const check = (): Promise<void> => {
    if (running !== undefined) {
      again = true
      return running
    }
    running = (async () => {
      do {
        again = false
        try {
          await look()
          if (failing) opts.log.info('reading pushed policies from the store again')
          failing = false
        } catch (err) {
          if (!failing) opts.log.warn('cannot read pushed policies from the store (the configuration in force stays; retried)', { cause: err })
          failing = true
        }
      } while (again)
    })().finally(() => { running = undefined })
    return running
  }
  const stopSignals = opts.signals?.(() => void check())
  const timer = setInterval(() => void check(), opts.pollMs)
  timer.unref()
  return {
    check,
    close() {
      clearInterval(timer)
      stopSignals?.()
    },
  }
}

function verified(row: PushedConfig, opts: PushedFollowerOptions, refused: Set<number>): boolean {
  if (refused.has(row.seq)) return false
  const verdict = verifyPush(opts.master(), row)
  if (verdict.ok) return true
  refused.add(row.seq)
  opts.onRefused?.(row.seq)
  opts.log.error('pushed policy refused: it was not made by a holder of the master key; the configuration in force stays', { pushed: row.seq, why: verdict.why })
  return false
}
