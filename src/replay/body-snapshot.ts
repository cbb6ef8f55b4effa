/**
 * The parts of a body a schema read (body-reads.ts), recorded in the audit for replay, and a
 * body rebuilt from them for another schema that reads nothing else.
 *
 * Recorded per pointer: null when nothing is there; else its JSON type, its key names when they
 * were read (at most 64, of 64 characters), and its whole value when that was read, unless the
 * value is over 1 KiB, nested over three levels, holds a number JSON cannot write, or sits under
 * a secret-bearing name (then `withheld`). What is not kept, a
 * schema reading it cannot be replayed on. The record is masked like every other audit field
 * afterwards.
 */
import type { BodySnapshot, BodySnapshotEntry } from '../audit/record.ts'
import { tokens, type BodyRead } from './body-reads.ts'

const MAX_VALUE_BYTES = 1024
/** record (0) > decided_on > body_fields > entry > value (4): three levels inside it stay within mask.ts's eight. */
const MAX_NESTING = 3
const MAX_KEYS = 64
const MAX_KEY = 64
const SECRET_BEARING = /auth|token|secret|key|cookie|session|passw|signature|credential/i

export function snapshot(json: unknown, reads: readonly BodyRead[]): BodySnapshot {
  // The body's own type always: whether what a schema says of an object applies at all.
  const out: Record<string, BodySnapshotEntry | null> = { '': { type: typeOf(json) } }
  for (const read of reads) {
    const found = lookup(json, read.at)
    if (!found.present) {
      out[read.at] = null
      continue
    }
    const entry: BodySnapshotEntry = { ...out[read.at], type: typeOf(found.value) }
    if (read.kind === 'keys' && isObject(found.value)) {
      // Key names are the sandbox's to choose: kept only while few and short (else a schema reading them is not replayable).
      const keys = Object.keys(found.value)
      out[read.at] = keys.length > MAX_KEYS || keys.some((k) => k.length > MAX_KEY) ? entry : { ...entry, keys }
    }
    else if (read.kind === 'value') {
      const secret = tokens(read.at).some((t) => SECRET_BEARING.test(t))
      out[read.at] = secret || !recordable(found.value, 0) || JSON.stringify(found.value).length > MAX_VALUE_BYTES ? { ...entry, withheld: true } : { ...entry, value: found.value }
    } else out[read.at] = entry
  }
  return out
}

/** Whether the snapshot holds everything these reads look at (then rebuild gives a body they judge as they would the original). */
export function covers(snap: BodySnapshot, reads: readonly BodyRead[]): boolean {
  return reads.every((read) => {
    // A whole value recorded at the pointer or above it holds everything below.
    const path = tokens(read.at)
    for (let depth = path.length; depth >= 0; depth--) {
      const above = entryAt(snap, path.slice(0, depth))
      if (above === undefined) continue
      if (above === null) return true // nothing there (or above): what a schema reads there does not apply
      if ('value' in above) return true
      if (depth < path.length) {
        // The nearest recorded part above: not an object, so nothing is below; or its keys say whether the next is there.
        if (above.type !== 'object') return true
        if (above.keys !== undefined && !above.keys.includes(path[depth] as string)) return true
        if (depth === path.length - 1 && read.kind === 'presence' && above.keys !== undefined) return true
        return false
      }
      if (read.kind === 'presence' || read.kind === 'type') return true
      if (read.kind === 'keys') return above.keys !== undefined
      return false
    }
    return false
  })
}

/** A body with the recorded parts where they were, and stand-ins of the recorded type elsewhere. */
export function rebuild(snap: BodySnapshot): unknown {
  const root = snap[''] ?? { type: 'null' }
  if (root === null) return null
  const build = (entry: BodySnapshotEntry, path: readonly string[]): unknown => {
    if ('value' in entry) return entry.value
    if (entry.type !== 'object') return STAND_IN[entry.type]
    const object: Record<string, unknown> = {}
    for (const key of entry.keys ?? []) object[key] = null
    for (const [at, child] of Object.entries(snap)) {
      const childPath = tokens(at)
      if (childPath.length !== path.length + 1 || !path.every((t, i) => childPath[i] === t)) continue
      const name = childPath[path.length] as string
      if (child === null) delete object[name]
      else object[name] = build(child, childPath)
    }
    return object
  }
  return build(root, [])
}

const STAND_IN: Record<string, unknown> = { array: [], string: '', integer: 0, number: 0.5, boolean: false, null: null }

function entryAt(snap: BodySnapshot, path: readonly string[]): BodySnapshotEntry | null | undefined {
  const at = path.map((t) => `/${t.replaceAll('~', '~0').replaceAll('/', '~1')}`).join('')
  return Object.hasOwn(snap, at) ? snap[at] : undefined
}

function lookup(json: unknown, at: string): { present: true; value: unknown } | { present: false } {
  let node = json
  for (const token of tokens(at)) {
    if (isObject(node) && Object.hasOwn(node, token)) node = node[token]
    else if (Array.isArray(node) && /^(0|[1-9][0-9]*)$/.test(token) && Number(token) < node.length) node = node[Number(token)]
    else return { present: false }
  }
  return { present: true, value: node }
}

/**
 * Whether a value can go into the record as it is: no number JSON cannot write (1e400 parses as
 * Infinity, which the canonical JSON of the record refuses), and nested at most MAX_NESTING deep,
 * so that masking the record (audit/mask.ts, which walks 8 levels) reaches every string in it.
 */
function recordable(value: unknown, depth: number): boolean {
  if (typeof value === 'number') return Number.isFinite(value)
  if (typeof value !== 'object' || value === null) return true
  if (depth >= MAX_NESTING) return false
  return (Array.isArray(value) ? value : Object.values(value)).every((v) => recordable(v, depth + 1))
}

function typeOf(value: unknown): BodySnapshotEntry['type'] {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number'
  return typeof value as 'object' | 'string' | 'boolean'
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
