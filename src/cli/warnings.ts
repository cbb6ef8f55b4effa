import { existsSync } from 'node:fs'
import { relative } from 'node:path'
import { missingSecrets, type SecretReference } from '../config/check.ts'
import type { Config, ConfigWarning } from '../config/load.ts'
import { SqliteStore } from '../store/sqlite-store.ts'

/** `file:line: field: message`, as `check` prints each warning. */
export function formatWarning(config: Config, w: ConfigWarning): string {
  return `warning: ${config.file}${w.line === undefined ? '' : `:${w.line}`}: ${w.path}: ${w.message}`
}

/**
 * The secrets the configuration names that the vault of its data folder lacks; undefined when
 * there is no database yet (nothing to compare with), or the store is a PostgreSQL server (this
 * reads the configuration only and reaches no server). Names only: no master key is needed.
 */
export async function missingFromVault(config: Config): Promise<SecretReference[] | undefined> {
  if (config.store.kind !== 'sqlite' || !existsSync(config.databasePath)) return undefined
  const store = SqliteStore.open(config.databasePath)
  try {
    return missingSecrets(config.secrets, new Set((await store.secrets.list()).map((s) => s.name)))
  } finally {
    await store.close()
  }
}

/**
 * What `start` says about the configuration: one line that counts the warnings and names the
 * secrets not set, and points at `check` for the details; undefined when there is nothing to say.
 */
export function warningSummary(config: Config, missing: readonly SecretReference[], cwd: string): string | undefined {
  const count = config.warnings.length
  if (count === 0 && missing.length === 0) return undefined
  const shown = relative(cwd, config.file)
  const file = shown.startsWith('..') ? config.file : shown
  const parts = [
    ...(count === 0 ? [] : [`${count} configuration warning${count === 1 ? '' : 's'}`]),
    ...(missing.length === 0 ? [] : [`vault secrets not set: ${[...new Set(missing.map((m) => m.name))].join(', ')}`]),
  ]
  return `warning: ${file}: ${parts.join('; ')} (keyvalet check ${file} lists them)`
}
