/**
 * Hot reload: the configuration in force, and the one way to replace it. A reload reads the file
 * again, parses, validates and compiles it (load.ts) and checks that it changes only what a
 * running keyvalet can change (`RELOADABLE`); only then is it put in force, all at once. If
 * anything is wrong the configuration in force stays, and the reload answers why (every problem,
 * as `keyvalet check` would print it). Nothing is ever half applied.
 *
 * What a reload may change: the connectors (upstreams, credentials, rules, assertion,
 * attribution), the pass-through tunnels, limits.max_body_inspect_bytes and limits.approval_body_bytes. Everything else is
 * fixed while keyvalet runs, because a listener, a resolver, the store, the session service or the
 * audit writer was built from it: the listeners (listen.*), data_dir, audit.*, dns, the instance's
 * upstream_proxy, sessions.max_ttl and the other limits. A reload that changes one of those is refused
 * (config_reload_refused, naming each field); restart keyvalet to change them.
 *
 * A pushed policy (fleet.policy: pushed; policy-file.ts, pushed-follower.ts) is put in force the
 * same way (`push`), and stays the overlay every later reload of the file is read with: a reload
 * re-reads the file's fixed part and applies the pushed fields over it again.
 *
 * Requests take the configuration once, when they start (proxy/handler.ts), so one in flight
 * finishes under the version it started with; its audit record names that version.
 */

import { canonicalJson } from '../audit/canonical-json.ts'
import { KeyvaletError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { loadConfig, type Config } from './load.ts'
import { withPolicy, type PolicyOverlay } from './policy-file.ts'
import { RELOADABLE } from './reloadable.ts'

export { RELOADABLE } from './reloadable.ts'

/** What a reload did: a new version in force, nothing to do (same version), or refused (the old one stays). */
export type ReloadResult =
  | { readonly result: 'applied'; readonly version: string; readonly previous: string; readonly warnings: readonly string[] }
  | { readonly result: 'unchanged'; readonly version: string }
  | { readonly result: 'failed'; readonly version: string; readonly error: KeyvaletError }

/** Who asked for a reload, for the operator log. */
export type ReloadTrigger = 'signal' | 'admin' | 'watch' | 'push'

export interface LiveConfigOptions {
  /** Puts a new configuration in force in the parts built from it (the proxy); throws if it cannot. */
  readonly apply: (next: Config) => void
  readonly log: Logger
  /** The pushed policy `initial` was built with (policy-file.ts withPolicy), if any: later reloads keep it. */
  readonly overlay?: PolicyOverlay
}

/**
 * The configuration in force and its reloads. Reloads run one at a time, in the order asked for.
 * `onReload` listeners (metrics) hear every result.
 */
export class LiveConfig {
  #current: Config
  #overlay: PolicyOverlay | undefined
  readonly #opts: LiveConfigOptions
  readonly #listeners: ((result: ReloadResult, trigger: ReloadTrigger) => void)[] = []
  #queue: Promise<unknown> = Promise.resolve()
  /** Reloads by result since start: the counter the operator's metrics read. */
  readonly counts = { applied: 0, unchanged: 0, failed: 0 }

  constructor(initial: Config, opts: LiveConfigOptions) {
    this.#current = initial
    this.#overlay = opts.overlay
    this.#opts = opts
  }

  /** The configuration in force now: read it per use, never keep it. */
  get current(): Config {
    return this.#current
  }

  /** Called with every reload's result (e.g. by metrics: keyvalet_config_reloads_total{result}). */
  onReload(listener: (result: ReloadResult, trigger: ReloadTrigger) => void): void {
    this.#listeners.push(listener)
  }

  /** Reads the file again and puts it in force, or keeps the one in force and says why. Never throws. */
  reload(trigger: Exclude<ReloadTrigger, 'push'>): Promise<ReloadResult> {
    return this.#queued(() => this.#reload(trigger, undefined))
  }

  /**
   * Puts the file with this pushed policy over it in force (as a reload would: all or nothing),
   * and keeps the policy for later reloads. Never throws.
   */
  push(overlay: PolicyOverlay): Promise<ReloadResult> {
    return this.#queued(() => this.#reload('push', overlay))
  }

  #queued(work: () => ReloadResult): Promise<ReloadResult> {
    const run = this.#queue.then(work)
    this.#queue = run.catch(() => undefined)
    return run
  }

  #reload(trigger: ReloadTrigger, pushed: PolicyOverlay | undefined): ReloadResult {
    const overlay = pushed ?? this.#overlay
    const result = this.#attempt(overlay)
    if (result.result !== 'failed') this.#overlay = overlay
    this.counts[result.result]++
    const { log } = this.#opts
    const seq = overlay?.seq === undefined ? {} : { pushed: overlay.seq }
    if (result.result === 'applied') log.info('configuration reloaded', { trigger, version: result.version, previous: result.previous, ...seq, warnings: result.warnings.length })
    else if (result.result === 'unchanged') log.info('configuration reload: unchanged', { trigger, version: result.version, ...seq })
    else log.error('configuration reload failed: the configuration in force stays', { trigger, version: result.version, ...seq, error: result.error.code, problems: result.error.detail?.problems })
    for (const warning of result.result === 'applied' ? result.warnings : []) log.warn('configuration warning', { warning })
    for (const listener of this.#listeners) listener(result, trigger)
    return result
  }

  #attempt(overlay: PolicyOverlay | undefined): ReloadResult {
    const current = this.#current
    let next: Config
    try {
      next = overlay === undefined ? loadConfig(current.file) : withPolicy(current.file, overlay)
    } catch (err) {
      const problems = (err instanceof Error ? err.message : String(err)).split('\n')
      return { result: 'failed', version: current.version, error: new KeyvaletError('config_invalid', { message: `The configuration file has errors; the configuration in force (${current.version}) stays. ${problems.join(' ')}`.slice(0, 2000), detail: { problems } }) }
    }
    if (next.version === current.version) {
      // The same configuration from a newer push: nothing to apply, but the push it came from is now this one.
      if (next.pushed?.seq !== current.pushed?.seq) this.#current = next
      return { result: 'unchanged', version: current.version }
    }
    const fixed = fixedChanges(current, next)
    if (fixed.length > 0) {
      const message = `A reload cannot change ${fixed.join(', ')} (restart keyvalet for that); the configuration in force (${current.version}) stays.`
      return { result: 'failed', version: current.version, error: new KeyvaletError('config_reload_refused', { message, detail: { fields: fixed, problems: [message] } }) }
    }
    try {
      this.#opts.apply(next)
    } catch (err) {
      const problems = [err instanceof Error ? err.message : String(err)]
      return { result: 'failed', version: current.version, error: new KeyvaletError('config_invalid', { message: `The new configuration could not be put in force; the configuration in force (${current.version}) stays.`, detail: { problems } }) }
    }
    this.#current = next
    return { result: 'applied', version: next.version, previous: current.version, warnings: next.warnings.map((w) => `${w.path}: ${w.message}`) }
  }
}

/** The fields outside RELOADABLE whose value differs between two configurations, as dotted paths (sorted). */
export function fixedChanges(current: Config, next: Config): string[] {
  const changed: string[] = []
  diff(current.effective, next.effective, '', changed)
  return changed.filter((path) => !RELOADABLE.some((r) => path === r || path.startsWith(`${r}.`))).sort()
}

/** Collects the paths where `a` and `b` differ: the deepest object key, a whole array or value otherwise. */
function diff(a: unknown, b: unknown, path: string, out: string[]): void {
  if (isPlainObject(a) && isPlainObject(b)) {
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) diff(a[key], b[key], path === '' ? key : `${path}.${key}`, out)
    return
  }
  if (canonical(a) !== canonical(b)) out.push(path)
}

function canonical(value: unknown): string {
  return value === undefined ? '' : canonicalJson(value)
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
