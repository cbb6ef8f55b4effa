import { KeyvaletError, OperatorError } from '../errors.ts'
import type { Vault } from '../vault/vault.ts'
import { createCa, type CaMaterial } from './certificate.ts'

/** The vault name of keyvalet's interception CA (a reserved name: vault/reserved.ts). */
export const CA_SECRET = 'keyvalet.ca'

const YEAR_MS = 365 * 24 * 3_600_000

/**
 * keyvalet's interception CA: created on first use and kept in the vault, so its private key is
 * only ever stored encrypted (never written to a file in clear). Sandboxes trust its certificate
 * (`keyvalet ca bundle`, with the public CAs; `keyvalet ca export` alone).
 */
export async function loadOrCreateCa(vault: Vault, clock: () => number = Date.now): Promise<{ ca: CaMaterial; created: boolean }> {
  try {
    const stored = JSON.parse((await vault.open(CA_SECRET)).toString('utf8')) as CaMaterial
    if (typeof stored.certPem !== 'string' || typeof stored.keyPem !== 'string') throw new Error('malformed CA record')
    return { ca: stored, created: false }
  } catch (err) {
    if (!(err instanceof KeyvaletError)) throw err
    if (err.detail?.why !== 'secret_missing') {
      const why = typeof err.detail?.message === 'string' ? err.detail.message : String(err.detail?.why ?? 'unreadable')
      throw new OperatorError(`the interception CA in the vault cannot be opened: ${why}`, 'start keyvalet with the master key that created this data folder (KEYVALET_MASTER_KEY or KEYVALET_MASTER_KEY_FILE)', { cause: err })
    }
  }
  const now = clock()
  const ca = createCa({ commonName: 'keyvalet interception CA', notBefore: new Date(now - 3_600_000), notAfter: new Date(now + 5 * YEAR_MS) })
  await vault.put(CA_SECRET, Buffer.from(JSON.stringify(ca)))
  return { ca, created: true }
}
