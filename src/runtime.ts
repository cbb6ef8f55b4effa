import type { Config } from './config/load.ts'
import { Sessions } from './sessions/sessions.ts'
import { SqliteStore } from './store/sqlite-store.ts'
import type { Store } from './store/store.ts'
import { deriveKey, loadMasterKey, type MasterKey } from './vault/master-key.ts'
import { Vault } from './vault/vault.ts'

/** The stateful parts every command and the server share, built from a validated Config. */
export interface Runtime {
  readonly config: Config
  readonly store: Store
  readonly master: MasterKey
  readonly vault: Vault
  readonly sessions: Sessions
  /** HMAC key of the audit chain (the audit writer thread appends, `audit verify` checks). */
  readonly auditKey: Buffer
  close(): Promise<void>
}

export interface RuntimeOptions {
  readonly env: NodeJS.ProcessEnv
  /** Create the default master key file when none exists (only `start` and `demo` do). */
  readonly createMasterKey: boolean
  readonly clock?: () => number
}

/** Composition root: no logic, only wiring. The master key is loaded before the store is opened. */
export function openRuntime(config: Config, opts: RuntimeOptions): Runtime {
  const clock = opts.clock ?? Date.now
  const master = loadMasterKey({ env: opts.env, dataDir: config.dataDir, create: opts.createMasterKey })
  const store = SqliteStore.open(config.databasePath, { fsync: config.auditFsync })
  const auditKey = deriveKey(master, 'keyvalet audit v1')
  return {
    config,
    store,
    master,
    vault: new Vault(store.secrets, master, clock),
    sessions: new Sessions(store.sessions, clock),
    auditKey,
    close: () => store.close(),
  }
}
