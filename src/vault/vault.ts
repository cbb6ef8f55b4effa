import { createSecretKey, type KeyObject } from 'node:crypto'
import { KeyvaletError, OperatorError } from '../errors.ts'
import type { SecretRecord, SecretRepo } from '../store/store.ts'
import { EnvelopeError, openEnvelope, rewrapEnvelope, sealEnvelope } from './envelope.ts'
import { deriveKey, type MasterKey } from './master-key.ts'

const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/

/** Why `open` could not return a value; appears as `detail.why` of credential_unavailable. */
export type VaultFailure = 'secret_missing' | 'master_key_mismatch' | 'record_tampered'

export const VAULT_OPERATIONS = ['open', 'put', 'delete', 'list', 'rewrap'] as const
export type VaultOperation = (typeof VAULT_OPERATIONS)[number]

/**
 * The credential vault: write-only from the outside (names and metadata can be listed, values are
 * returned only to the pipeline through `open`). Envelope encryption: each put seals the value under
 * a fresh data key, and the data key under a KEK derived from the master key. Both are bound to the
 * secret's name (AAD), so an envelope copied to another name does not open.
 */
export class Vault {
  readonly #repo: SecretRepo
  /** The key that seals; its id is stored with each record. */
  #current: { readonly keyId: string; readonly kek: KeyObject }
  /** The master key (and the previous one of a rotation) as last read: what other keys derived from it follow. */
  #master: MasterKey
  /** Every key that may open a record: the current one and, during a rotation, the previous one. */
  readonly #keks = new Map<string, KeyObject>()
  readonly #clock: () => number
  readonly #keySource: KeySource | undefined
  readonly #keyListeners: (() => void)[] = []
  /**
   * Values already opened, by name, with the envelope they came from. `open` still reads the
   * record every time and reuses a value only while the stored envelope is byte-identical, so a
   * `secret set` from any process takes effect on the next request; it only skips the two AES-GCM
   * operations. The plaintext would be in this process's memory during each request anyway.
   */
  readonly #opened = new Map<string, { readonly envelope: Buffer; readonly value: Buffer }>()
  /** Operations by kind: completed, or failed (a missing secret `open` asked for is a failure). For the metrics. */
  readonly operations: Readonly<Record<VaultOperation, { ok: number; failed: number }>> = {
    open: { ok: 0, failed: 0 }, put: { ok: 0, failed: 0 }, delete: { ok: 0, failed: 0 }, list: { ok: 0, failed: 0 }, rewrap: { ok: 0, failed: 0 },
  }

  /**
   * `keySource`, when the master key comes from a file, lets a running vault follow a master-key
   * rotation done by another process: the file is re-read when it changed (checked before each
   * seal, and when a record names a key this vault does not hold).
   */
  constructor(repo: SecretRepo, master: MasterKey, clock: () => number, keySource?: KeySource) {
    this.#repo = repo
    this.#clock = clock
    this.#keySource = keySource
    this.#master = master
    this.#current = this.#adopt(master)
  }

  /**
   * The master key as its file holds it now (read again if it changed), with the previous key of a
   * rotation: for keys derived from it elsewhere (pushed policies' MACs, config/push-mac.ts).
   */
  get masterKey(): MasterKey {
    this.#followKeySource()
    return this.#master
  }

  /** Id of the master key new records are sealed under. */
  get keyId(): string {
    return this.#current.keyId
  }

  /** Ids of every master key this vault can open records with, the one it seals under first (public fingerprints). */
  get keyIds(): string[] {
    return [this.#current.keyId, ...[...this.#keks.keys()].filter((id) => id !== this.#current.keyId)]
  }

  /** `listener` hears each time the keys held change (the key file changed and was read again). */
  onKeysChanged(listener: () => void): void {
    this.#keyListeners.push(listener)
  }

  /**
   * Reads the key file again now if it changed (one stat otherwise), as a seal would. A serving
   * instance calls it every second or so, so that a key staged in its file is held (and reported)
   * without waiting for a request to need it.
   */
  followKeyFile(): void {
    this.#followKeySource()
  }

  #adopt(master: MasterKey): { readonly keyId: string; readonly kek: KeyObject } {
    for (const key of [master, ...master.previous]) {
      // A KeyObject, not a Buffer: Node validates raw key buffers on every cipher call.
      if (!this.#keks.has(key.keyId)) this.#keks.set(key.keyId, createSecretKey(deriveKey(key, 'keyvalet vault kek v1')))
    }
    return { keyId: master.keyId, kek: this.#keks.get(master.keyId) as KeyObject }
  }

  /** Re-reads the key file when it changed; errors reading it keep the keys already held. */
  #followKeySource(): void {
    const source = this.#keySource
    if (source === undefined || !source.changed()) return
    const before = this.keyIds.join(' ')
    try {
      const loaded = source.load()
      this.#current = this.#adopt(loaded)
      this.#master = loaded
    } catch {
      // A half-written or unreadable file: keep serving with what we have; the next change retries.
      return
    }
    if (this.keyIds.join(' ') === before) return
    for (const listener of this.#keyListeners) listener()
  }

  /** Throws OperatorError unless `name` is 1–63 chars of [a-z0-9._-], starting with [a-z0-9]. */
  static validateName(name: string): void {
    if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
      throw new OperatorError(
        `invalid secret name ${JSON.stringify(String(name).slice(0, 80))}`,
        'use 1-63 characters of a-z, 0-9, ".", "_" or "-", starting with a letter or digit',
      )
    }
  }

  /** Inserts or replaces the secret `name`. The caller may zero `value` afterwards. */
  put(name: string, value: Buffer): Promise<void> {
    return this.#counted('put', this.#put(name, value))
  }

  async #put(name: string, value: Buffer): Promise<void> {
    Vault.validateName(name)
    if (value.length === 0) {
      throw new OperatorError(`the value for secret ${name} is empty`, 'provide a non-empty value')
    }
    const now = this.#clock()
    this.#followKeySource()
    const { keyId, kek } = this.#current
    const envelope = sealEnvelope(kek, bindingOf(name), value)
    await this.#repo.put({ name, envelope, keyId, createdAt: now, updatedAt: now })
    this.#opened.delete(name)
  }

  /**
   * The plaintext value; the caller should zero it when done. Failures are
   * KeyvaletError('credential_unavailable') with detail { secret, why: VaultFailure, message }.
   */
  open(name: string): Promise<Buffer> {
    return this.#counted('open', this.#openOptional(name).then((value) => {
      if (value === undefined) throw unavailable(name, 'secret_missing', `secret ${name} is not in the vault`)
      return value
    }))
  }

  /**
   * For a secret that may legitimately be absent (created on first use, not connected yet): the
   * plaintext value, or undefined when there is no record. Every other failure throws as `open`.
   */
  openOptional(name: string): Promise<Buffer | undefined> {
    return this.#counted('open', this.#openOptional(name))
  }

  async #openOptional(name: string): Promise<Buffer | undefined> {
    const record = await this.#repo.get(name)
    if (record === undefined) {
      this.#opened.delete(name)
      return undefined
    }
    const cached = this.#opened.get(name)
    if (cached !== undefined && cached.envelope.equals(record.envelope)) return Buffer.from(cached.value)
    const kek = this.#kekFor(name, record.keyId)
    try {
      const value = openEnvelope(kek, bindingOf(name), record.envelope)
      this.#opened.set(name, { envelope: Buffer.from(record.envelope), value: Buffer.from(value) })
      return value
    } catch (err) {
      if (!(err instanceof EnvelopeError)) throw err
      throw unavailable(name, 'record_tampered', `secret ${name} failed authentication: ${err.message}`)
    }
  }

  #kekFor(name: string, keyId: string): KeyObject {
    if (!this.#keks.has(keyId)) this.#followKeySource()
    const kek = this.#keks.get(keyId)
    if (kek === undefined) {
      throw unavailable(
        name,
        'master_key_mismatch',
        `secret ${name} was sealed by master key ${keyId}, but the loaded master key is ${this.#current.keyId}`,
        { recordKeyId: keyId, loadedKeyId: this.#current.keyId },
      )
    }
    return kek
  }

  /**
   * Re-wraps the data key of `name` under the current master key (the value's ciphertext is
   * kept). Compare-and-swap: a record replaced meanwhile (a `secret set`, a token refresh) is
   * read again, so a concurrent write is never lost. Returns false when it was already current
   * or is gone.
   */
  rewrap(name: string): Promise<boolean> {
    return this.#counted('rewrap', this.#rewrap(name))
  }

  async #rewrap(name: string): Promise<boolean> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const record = await this.#repo.get(name)
      if (record === undefined || record.keyId === this.#current.keyId) return false
      const kek = this.#kekFor(name, record.keyId)
      let envelope: Buffer
      try {
        envelope = rewrapEnvelope(kek, this.#current.kek, bindingOf(name), record.envelope)
      } catch (err) {
        if (!(err instanceof EnvelopeError)) throw err
        throw unavailable(name, 'record_tampered', `secret ${name} failed authentication: ${err.message}`)
      }
      const swapped = await this.#repo.swap(name, record.envelope, { ...record, envelope, keyId: this.#current.keyId, updatedAt: this.#clock() })
      if (swapped) return true
    }
    throw new OperatorError(`secret ${name} kept changing while it was being re-wrapped`, 'run the rotation again')
  }

  /** Metadata only: never values, never envelopes. */
  list(): Promise<Omit<SecretRecord, 'envelope'>[]> {
    return this.#counted('list', this.#repo.list())
  }

  /** Returns false when no such secret existed. */
  delete(name: string): Promise<boolean> {
    this.#opened.delete(name)
    return this.#counted('delete', this.#repo.delete(name))
  }

  async #counted<T>(operation: VaultOperation, done: Promise<T>): Promise<T> {
    const counts = this.operations[operation]
    try {
      const result = await done
      counts.ok++
      return result
    } catch (err) {
      counts.failed++
      throw err
    }
  }
}

/** Where a file-held master key is re-read from when it changes (see Vault's constructor). */
export interface KeySource {
  /** Cheap (a stat): whether the key file differs from when it was last loaded. */
  changed(): boolean
  load(): MasterKey
}

/**
 * For the CLI and start-up: a vault failure reading `what` (e.g. "the interception CA") as an
 * OperatorError that says why and what to do; any other error is returned unchanged, to rethrow.
 */
export function unopenable(err: unknown, what: string, hint: string): unknown {
  if (!(err instanceof KeyvaletError) || err.code !== 'credential_unavailable') return err
  const why = typeof err.detail?.message === 'string' ? err.detail.message : String(err.detail?.why ?? 'unreadable')
  return new OperatorError(`${what} in the vault cannot be opened: ${why}`, hint, { cause: err })
}

/** The AAD binding an envelope to its record. */
function bindingOf(name: string): Buffer {
  return Buffer.from(`keyvalet:secret:v1:${name}`, 'utf8')
}

function unavailable(secret: string, why: VaultFailure, message: string, extra: Record<string, unknown> = {}) {
  return new KeyvaletError('credential_unavailable', { detail: { secret, why, message, ...extra } })
}
