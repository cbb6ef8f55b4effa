import type { Config } from './config/load.ts'
import { Sessions } from './sessions/sessions.ts'
import { assertSound, checkStoreFiles, type FileCheck } from './store/sqlite-check.ts'
import { locateStore, type StoreLocation } from './store/location.ts'
import { openStore } from './store/open.ts'
import type { Store } from './store/store.ts'
import { deriveKey, keyFileSource, loadMasterKey, type MasterKey } from './vault/master-key.ts'
import { unopenable, Vault } from './vault/vault.ts'

/** The stateful parts every command and the server share, built from a validated Config. */
export interface Runtime {
  readonly config: Config
  readonly store: Store
  /** Where the store is, password resolved: the audit writer thread opens its own connection to it. */
  readonly storeLocation: StoreLocation
  readonly master: MasterKey
  /** The master key now, with the previous one during a rotation, as the vault follows its file (Vault.masterKey; pushed policies are verified with it). */
  masterKeys(): MasterKey
  readonly vault: Vault
  readonly sessions: Sessions
  /** What the start check found (empty unless `checkStore`). */
  readonly storeChecks: readonly FileCheck[]
  /** HMAC key of the audit chain (the audit writer thread appends, `audit verify` checks). */
  openAuditKey(): Promise<Buffer>
  close(): Promise<void>
}

export interface RuntimeOptions {
  readonly env: NodeJS.ProcessEnv
  /** Create the default master key file when none exists (only `start` and `demo` do). */
  readonly createMasterKey: boolean
  /** Check the store's files before opening them and refuse damaged ones (the commands that serve). */
  readonly checkStore?: boolean
  /** Keep request-path reads, kept exact by the store's change notifications on PostgreSQL (the commands that serve). */
  readonly keepReads?: boolean
  readonly clock?: () => number
}

/** The vault record of the audit chain's key: every data folder has it once keyvalet started (the readiness check opens it). */
export const AUDIT_KEY_SECRET = 'keyvalet.audit-key'

/**
 * The audit chain's HMAC key lives in the vault, so that it survives a master-key rotation (the
 * rotation re-wraps it like any record). The first time, it is the key earlier versions derived
 * from the master key, so existing chains still verify.
 */
async function openAuditKey(vault: Vault, master: MasterKey): Promise<Buffer> {
  const stored = await vault.openOptional(AUDIT_KEY_SECRET).catch((err: unknown) => {
    throw unopenable(err, "the audit log's key", 'use the master key that created this data folder (KEYVALET_MASTER_KEY or KEYVALET_MASTER_KEY_FILE)')
  })
  if (stored !== undefined) return stored
  const key = deriveKey(master, 'keyvalet audit v1')
  await vault.put(AUDIT_KEY_SECRET, key)
  return key
}

/** Composition root: no logic, only wiring. The master key is loaded before the store is opened. */
export async function openRuntime(config: Config, opts: RuntimeOptions): Promise<Runtime> {
  const clock = opts.clock ?? Date.now
  const master = loadMasterKey({ env: opts.env, dataDir: config.dataDir, create: opts.createMasterKey })
  const storeChecks = opts.checkStore === true && config.store.kind === 'sqlite' ? checkStoreFiles(config.store.path, 'start') : []
  assertSound(storeChecks)
  const storeLocation = locateStore(config.store, opts.env)
  const keptReads = opts.keepReads === true && config.store.kind === 'postgres' ? config.store.keptReads : undefined
  const store = await openStore(storeLocation, keptReads === undefined ? {} : { keptReads })
  const vault = new Vault(store.secrets, master, clock, keyFileSource(master, { env: opts.env, dataDir: config.dataDir }))
  return {
    config,
    store,
    storeLocation,
    master,
    masterKeys: () => vault.masterKey,
    vault,
    sessions: new Sessions(store.sessions, clock, { maxTtlMs: config.sessions.maxTtlMs }),
    storeChecks,
    openAuditKey: () => openAuditKey(vault, master),
    close: () => store.close(),
  }
}
