import { createHash } from 'node:crypto'
import { canonicalJson } from '../audit/canonical-json.ts'
import type { Connector } from '../model/policy.ts'
import type { ConfigFile } from './schema.ts'

/**
 * The version of a configuration: `cfg_` and the first 16 hex digits (64 bits) of SHA-256 over the
 * canonical JSON of the file with its defaults filled in, and of the CA certificates its
 * connectors read from other files (a changed ca_file changes what keyvalet trusts, so it changes
 * the version too). Comments, key order and spelled-out defaults do not. Every audit record names
 * the version it was decided under, so two records decided under the same rules carry the same one.
 */
export function configVersion(effective: ConfigFile, connectors: ReadonlyMap<string, Connector>): string {
  const ca = Object.fromEntries([...connectors].flatMap(([name, c]) => (c.ca === undefined ? [] : [[name, c.ca]])))
  const digest = createHash('sha256').update(canonicalJson({ config: effective, ca })).digest('hex')
  return `cfg_${digest.slice(0, 16)}`
}
