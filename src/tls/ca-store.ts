import { unopenable, type Vault } from '../vault/vault.ts'
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
  const raw = await vault.openOptional(CA_SECRET).catch((err: unknown) => {
    throw unopenable(err, 'the interception CA', 'start keyvalet with the master key that created this data folder (KEYVALET_MASTER_KEY or KEYVALET_MASTER_KEY_FILE)')
  })
  if (raw !== undefined) {
    const stored = JSON.parse(raw.toString('utf8')) as CaMaterial
    if (typeof stored.certPem !== 'string' || typeof stored.keyPem !== 'string') throw new Error('malformed CA record')
    return { ca: stored, created: false }
  }
  const now = clock()
  const ca = createCa({ commonName: 'keyvalet interception CA', notBefore: new Date(now - 3_600_000), notAfter: new Date(now + 5 * YEAR_MS) })
  await vault.put(CA_SECRET, Buffer.from(JSON.stringify(ca)))
  return { ca, created: true }
}
