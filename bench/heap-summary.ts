/**
 * The largest groups of a V8 heap snapshot (.heapsnapshot JSON): self size summed by node type
 * and constructor name (strings, code and arrays by type alone). Measurement only.
 */

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } }
  nodes: number[]
  strings: string[]
}

const BY_TYPE_ONLY = new Set(['string', 'concatenated string', 'sliced string', 'code', 'array', 'number', 'hidden'])

export function groupSnapshot(text: string): Map<string, { bytes: number; count: number }> {
  const s = JSON.parse(text) as Snapshot
  const fields = s.snapshot.meta.node_fields
  const types = s.snapshot.meta.node_types[0]
  const width = fields.length
  const typeAt = fields.indexOf('type')
  const nameAt = fields.indexOf('name')
  const sizeAt = fields.indexOf('self_size')
  const groups = new Map<string, { bytes: number; count: number }>()
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + typeAt] as number] ?? '?'
    const key = BY_TYPE_ONLY.has(type) ? `(${type})` : `${type} ${(s.strings[s.nodes[i + nameAt] as number] ?? '?').slice(0, 80)}`
    const g = groups.get(key) ?? { bytes: 0, count: 0 }
    g.bytes += s.nodes[i + sizeAt] as number
    g.count++
    groups.set(key, g)
  }
  return groups
}

/** The `top` largest groups, one line each: KiB, count, group. */
export function summariseSnapshot(text: string, top: number): string {
  const groups = [...groupSnapshot(text)].sort((a, b) => b[1].bytes - a[1].bytes)
  const total = groups.reduce((n, [, g]) => n + g.bytes, 0)
  return [`  total ${(total / 1024 / 1024).toFixed(1)} MiB in ${groups.reduce((n, [, g]) => n + g.count, 0)} objects`,
    ...groups.slice(0, top).map(([k, g]) => `  ${(g.bytes / 1024).toFixed(0).padStart(8)} KiB ${String(g.count).padStart(8)}  ${k}`)].join('\n')
}
