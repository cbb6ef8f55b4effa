import { createSecretKey, type KeyObject } from 'node:crypto'
import { KeyvaletError, OperatorError } from '../errors.ts'
import type { SecretRecord, SecretRepo } from '../store/store.ts'
import { EnvelopeError, openEnvelope, sealEnvelope } from './envelope.ts'
import { deriveKey, type MasterKey } from './master-key.ts'

const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/

/** Why `open` could not return a value; appears as `detail.why` of credential_unavailable. */
export type VaultFailure = 'secret_missing' | 'master_key_mismatch' | 'record_tampered'

/**
 * The credential vault: write-only from the outside (names and metadata can be listed, values are
 * returned only to the pipeline through `open`). Envelope encryption: each put seals the value under
 * a fresh data key, and the data key under a KEK derived from the master key. Both are bound to the
 * secret's name (AAD), so an envelope copied to another name does not open.
 */
export class Vault {
  readonly #repo: SecretRepo
  readonly #keyId: string
  readonly #kek: KeyObject
  readonly #clock: () => number
  /**
   * Values already opened, by name, with the envelope they came from. `open` still reads the
   * record every time and reuses a value only while the stored envelope is byte-identical, so a
   * `secret set` from any process takes effect on the next request; it only skips the two AES-GCM
   * operations. The plaintext would be in this process's memory during each request anyway.
   */
  readonly #opened = new Map<string, { readonly envelope: Buffer; readonly value: Buffer }>()

  constructor(repo: SecretRepo, master: MasterKey, clock: () => number) {
    this.#repo = repo
    this.#keyId = master.keyId
    // A KeyObject, not a Buffer: Node validates raw key buffers on every cipher call.
    this.#kek = createSecretKey(deriveKey(master, 'keyvalet vault kek v1'))
    this.#clock = clock
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
  async put(name: string, value: Buffer): Promise<void> {
    Vault.validateName(name)
    if (value.length === 0) {
      throw new OperatorError(`the value for secret ${name} is empty`, 'provide a non-empty value')
    }
    const now = this.#clock()
    const envelope = sealEnvelope(this.#kek, bindingOf(name), value)
    await this.#repo.put({ name, envelope, keyId: this.#keyId, createdAt: now, updatedAt: now })
    this.#opened.delete(name)
  }

  /**
   * The plaintext value; the caller should zero it when done. Failures are
   * KeyvaletError('credential_unavailable') with detail { secret, why: VaultFailure, message }.
   */
  async open(name: string): Promise<Buffer> {
    const record = await this.#repo.get(name)
    if (record === undefined) {
      this.#opened.delete(name)
      throw unavailable(name, 'secret_missing', `secret ${name} is not in the vault`)
    }
    if (record.keyId !== this.#keyId) {
      throw unavailable(
        name,
        'master_key_mismatch',
        `secret ${name} was sealed by master key ${record.keyId}, but the loaded master key is ${this.#keyId}`,
        { recordKeyId: record.keyId, loadedKeyId: this.#keyId },
      )
    }
    const cached = this.#opened.get(name)
    if (cached !== undefined && cached.envelope.equals(record.envelope)) return Buffer.from(cached.value)
    try {
      const value = openEnvelope(this.#kek, bindingOf(name), record.envelope)
      this.#opened.set(name, { envelope: Buffer.from(record.envelope), value: Buffer.from(value) })
      return value
    } catch (err) {
      if (!(err instanceof EnvelopeError)) throw err
      throw unavailable(name, 'record_tampered', `secret ${name} failed authentication: ${err.message}`)
    }
  }

  /** Metadata only: never values, never envelopes. */
  async list(): Promise<Omit<SecretRecord, 'envelope'>[]> {
    return this.#repo.list()
  }

  /** Returns false when no such secret existed. */
  async delete(name: string): Promise<boolean> {
    this.#opened.delete(name)
    return this.#repo.delete(name)
  }
}

/** The AAD binding an envelope to its record. */
function bindingOf(name: string): Buffer {
  return Buffer.from(`keyvalet:secret:v1:${name}`, 'utf8')
}

function unavailable(secret: string, why: VaultFailure, message: string, extra: Record<string, unknown> = {}) {
  return new KeyvaletError('credential_unavailable', { detail: { secret, why, message, ...extra } })
}
