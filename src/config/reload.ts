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
 * Requests take the configuration once, when they start (proxy/handler.ts), so one in flight
 * finishes under the version it started with; its audit record names that version.
 */

import { canonicalJson } from '../audit/canonical-json.ts'
import { KeyvaletError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { loadConfig, type Config } from './load.ts'

/** Dotted paths of the fields a reload may change; everything else must stay as it is. */
export const RELOADABLE: readonly string[] = ['connectors', 'tunnels', 'limits.max_body_inspect_bytes', 'limits.approval_body_bytes', 'limits.approvals_per_session']

/** What a reload did: a new version in force, nothing to do (same version), or refused (the old one stays). */
export type ReloadResult =
  | { readonly result: 'applied'; readonly version: string; readonly previous: string; readonly warnings: readonly string[] }
  | { readonly result: 'unchanged'; readonly version: string }
  | { readonly result: 'failed'; readonly version: string; readonly error: KeyvaletError }

/** Who asked for a reload, for the operator log. */
export type ReloadTrigger = 'signal' | 'admin' | 'watch'

export interface LiveConfigOptions {
  /** Puts a new configuration in force in the parts built from it (the proxy); throws if it cannot. */
  readonly apply: (next: Config) => void
  readonly log: Logger
  /** Reads and compiles the file (default: loadConfig); tests never need another. */
  readonly load?: (file: string) => Config
}

/**
 * The configuration in force and its reloads. Reloads run one at a time, in the order asked for.
 * `onReload` listeners (metrics) hear every result.
 */
export class LiveConfig {
  #current: Config
  readonly #opts: LiveConfigOptions
  readonly #listeners: ((result: ReloadResult, trigger: ReloadTrigger) => void)[] = []
  #queue: Promise<unknown> = Promise.resolve()
  /** Reloads by result since start: the counter the operator's metrics read. */
  readonly counts = { applied: 0, unchanged: 0, failed: 0 }

  constructor(initial: Config, opts: LiveConfigOptions) {
    this.#current = initial
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
  reload(trigger: ReloadTrigger): Promise<ReloadResult> {
    const run = this.#queue.then(() => this.#reload(trigger))
    this.#queue = run.catch(() => undefined)
    return run
  }

  #reload(trigger: ReloadTrigger): ReloadResult {
    const result = this.#attempt()
    this.counts[result.result]++
    const { log } = this.#opts
    if (result.result === 'applied') log.info('configuration reloaded', { trigger, version: result.version, previous: result.previous, warnings: result.warnings.length })
    else if (result.result === 'unchanged') log.info('configuration reload: unchanged', { trigger, version: result.version })
    else log.error('configuration reload failed: the configuration in force stays', { trigger, version: result.version, error: result.error.code, problems: result.error.detail?.problems })
    for (const warning of result.result === 'applied' ? result.warnings : []) log.warn('configuration warning', { warning })
    for (const listener of this.#listeners) listener(result, trigger)
    return result
  }

  #attempt(): ReloadResult {
    const current = this.#current
    let next: Config
    try {
      next = (this.#opts.load ?? loadConfig)(current.file)
    } catch (err) {
      const problems = (err instanceof Error ? err.message : String(err)).split('\n')
      return { result: 'failed', version: current.version, error: new KeyvaletError('config_invalid', { message: `The configuration file has errors; the configuration in force (${current.version}) stays. ${problems.join(' ')}`.slice(0, 2000), detail: { problems } }) }
    }
    if (next.version === current.version) return { result: 'unchanged', version: current.version }
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
