/**
 * A policy file: the part of keyvalet.yaml a running keyvalet may change (reload.ts RELOADABLE:
 * the connectors, the tunnels and some limits), as `keyvalet config push` stores it for a fleet.
 * An instance that follows pushes (fleet.policy: pushed) serves under its own file with the
 * policy file's fields in place of the file's: `withPolicy` builds that configuration, loaded and
 * checked exactly as `keyvalet check` loads a file.
 */

import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { parseDocument, stringify } from 'yaml'
import { OperatorError } from '../errors.ts'
import { parseConfig, type Config } from './load.ts'
import { RELOADABLE } from './reloadable.ts'

/** A policy as pushed: its text, and the push it came from (undefined: not pushed, e.g. checked before a push). */
export interface PolicyOverlay {
  readonly text: string
  /** Names the policy in messages (a file name, or `pushed policy 12`). */
  readonly name: string
  readonly seq: number | undefined
}

/**
 * The policy file's fields, as a plain object; an OperatorError naming the source and every
 * field outside RELOADABLE (a field whose dotted path is a prefix of a RELOADABLE one, such as
 * `limits`, is looked into).
 */
export function parsePolicyFile(text: string, name: string): Record<string, unknown> {
  const doc = parseDocument(text, { prettyErrors: true })
  if (doc.errors.length > 0) {
    throw new OperatorError(`${name}: ${doc.errors.slice(0, 10).map((e) => (e.message.split('\n')[0] ?? e.message)).join('; ')}`, 'fix the YAML syntax of the policy file')
  }
  const raw: unknown = doc.toJS()
  if (!isPlainObject(raw)) throw new OperatorError(`${name}: a policy file is a mapping of ${RELOADABLE.join(', ')}`, 'write the policy as YAML fields (connectors: …)')
  const refused = fieldsOutside(raw, '')
  if (refused.length > 0) {
    throw new OperatorError(
      `${name}: a pushed policy may hold only ${RELOADABLE.join(', ')}; it holds ${refused.join(', ')}`,
      'each instance keeps everything else in its own keyvalet.yaml (a restart changes it); remove those fields from the policy file',
    )
  }
  return raw
}

/**
 * The configuration of `file` with the policy's fields in place of the file's (fields the policy
 * does not name keep the file's value), loaded as loadConfig would; `pushed` says which push it
 * came from. Problems are an OperatorError, as `keyvalet check` prints them.
 */
export function withPolicy(file: string, overlay: PolicyOverlay): Config {
  const policy = parsePolicyFile(overlay.text, overlay.name)
  const own = readConfigText(file)
  const ownDoc = parseDocument(own)
  const base: unknown = ownDoc.errors.length === 0 ? ownDoc.toJS() : undefined
  // A broken file is reported as loadConfig reports it, lines and all.
  if (!isPlainObject(base)) return parseConfig(own, file)
  for (const path of RELOADABLE) {
    const value = getIn(policy, path)
    if (value !== undefined) setIn(base, path, value)
  }
  let config: Config
  try {
    config = parseConfig(stringify(base), file)
  } catch (err) {
    if (!(err instanceof OperatorError)) throw err
    throw new OperatorError(`${file} with ${overlay.name} in place of its ${RELOADABLE.filter((p) => getIn(policy, p) !== undefined).join(', ')} (line numbers count in the merged text): ${err.message}`, err.hint ?? 'fix the policy file', { cause: err })
  }
  return overlay.seq === undefined ? config : { ...config, pushed: { seq: overlay.seq, sha256: policyDigest(overlay.text) } }
}

/** SHA-256 of a policy text (UTF-8), hex: what a push stores and its MAC covers. */
export function policyDigest(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex')
}

function readConfigText(file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (err) {
    throw new OperatorError(`${file}: cannot read the configuration file (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'pass --config <file>', { cause: err })
  }
}

/** Dotted paths of `value`'s fields that a policy may not hold. */
function fieldsOutside(value: Record<string, unknown>, prefix: string): string[] {
  const refused: string[] = []
  for (const [key, inner] of Object.entries(value)) {
    const path = prefix === '' ? key : `${prefix}.${key}`
    if (RELOADABLE.includes(path)) continue
    if (RELOADABLE.some((r) => r.startsWith(`${path}.`)) && isPlainObject(inner)) refused.push(...fieldsOutside(inner, path))
    else refused.push(path)
  }
  return refused
}

function getIn(value: Record<string, unknown>, path: string): unknown {
  let at: unknown = value
  for (const key of path.split('.')) at = isPlainObject(at) ? at[key] : undefined
  return at
}

function setIn(value: Record<string, unknown>, path: string, inner: unknown): void {
  const keys = path.split('.')
  let at = value
  for (const key of keys.slice(0, -1)) {
    const next = at[key]
    if (!isPlainObject(next)) at[key] = {}
    at = at[key] as Record<string, unknown>
  }
  at[keys.at(-1) as string] = inner
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
