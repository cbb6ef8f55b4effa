/**
 * Where a configuration field is: its YAML line and a readable field path, for error messages
 * and warnings (`keyvalet.yaml:14: connectors.github.rules[0].severity: ...`).
 */

import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter } from 'yaml'
import type { FieldPath } from '../schema-kit/field-path.ts'

export { pointerToPath } from '../schema-kit/field-path.ts'

export interface Location {
  readonly line: number | undefined
  readonly path: string
}

export type Locate = (at: FieldPath) => Location

/** A problem found while loading, located later. */
export interface Problem {
  readonly at: FieldPath
  readonly message: string
}

/**
 * Line of the deepest node on the path that exists: a key's own line for map entries (so
 * "missing field" errors point at the parent key, not at its first child).
 */
export function locator(doc: Document, lines: LineCounter): Locate {
  const lineAt = (offset: number | undefined): number | undefined =>
    offset === undefined ? undefined : lines.linePos(offset).line
  return (at) => {
    let node: unknown = doc.contents
    let line = lineAt(rangeStart(node)) ?? 1
    for (const key of at) {
      if (isAlias(node)) node = node.resolve(doc)
      if (isMap(node)) {
        const pair = node.items.find((p) => keyText(p.key) === String(key))
        if (pair === undefined) break
        line = lineAt(rangeStart(pair.key)) ?? line
        node = pair.value
      } else if (isSeq(node) && typeof key === 'number') {
        const item: unknown = node.items[key]
        if (item === undefined) break
        line = lineAt(rangeStart(item)) ?? line
        node = item
      } else {
        break
      }
    }
    return { line, path: formatFieldPath(at) }
  }
}

/** connectors.github.rules[0].severity; odd keys are quoted: headers["x.y"]. */
export function formatFieldPath(at: FieldPath): string {
  let out = ''
  for (const key of at) {
    if (typeof key === 'number') out += `[${key}]`
    else if (/^[A-Za-z0-9_-]+$/.test(key)) out += out === '' ? key : `.${key}`
    else out += `[${JSON.stringify(key)}]`
  }
  return out
}


/** `file:line: path: message`, one problem per line, at most `max`, in file order. */
export function formatProblems(file: string, problems: readonly Problem[], locate: Locate, max = 10): string {
  const located = problems.map((p) => ({ ...locate(p.at), message: p.message }))
  located.sort((a, b) => (a.line ?? 0) - (b.line ?? 0))
  const lines = [...new Set(located.map((l) => `${file}${l.line === undefined ? '' : `:${l.line}`}: ${l.path === '' ? '' : `${l.path}: `}${l.message}`))]
  const shown = lines.slice(0, max)
  if (lines.length > max) shown.push(`… and ${lines.length - max} more`)
  return shown.join('\n')
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as { range?: readonly number[] } | null | undefined)?.range
  return range?.[0]
}

function keyText(key: unknown): string | undefined {
  if (isScalar(key)) return String(key.value)
  return typeof key === 'string' ? key : undefined
}
