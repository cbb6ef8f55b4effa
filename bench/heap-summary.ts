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

interface GraphSnapshot extends Snapshot {
  snapshot: Snapshot['snapshot'] & { meta: Snapshot['snapshot']['meta'] & { edge_fields: string[]; edge_types: [string[], ...unknown[]] } }
  edges: number[]
}

/**
 * Closures by the function they are of (`name file:line`), counted, with the self size of the
 * closure and of its context: which code's pending calls and listeners the heap holds. Paths are
 * shown relative to `root` when under it.
 */
export function groupClosures(text: string, root: string): Map<string, { bytes: number; count: number }> {
  const s = JSON.parse(text) as GraphSnapshot
  const nf = s.snapshot.meta.node_fields
  const ef = s.snapshot.meta.edge_fields
  const types = s.snapshot.meta.node_types[0]
  const edgeTypes = s.snapshot.meta.edge_types[0]
  const width = nf.length
  const ew = ef.length
  const [typeAt, nameAt, sizeAt, edgeCountAt] = ['type', 'name', 'self_size', 'edge_count'].map((f) => nf.indexOf(f)) as [number, number, number, number]
  const [edgeTypeAt, edgeNameAt, toAt] = ['type', 'name_or_index', 'to_node'].map((f) => ef.indexOf(f)) as [number, number, number]
  const firstEdge = new Uint32Array(s.nodes.length / width + 1)
  for (let i = 0, e = 0; i < s.nodes.length; i += width) { firstEdge[i / width] = e; e += (s.nodes[i + edgeCountAt] as number) * ew }
  const edgeTo = (node: number, name: string): number | undefined => {
    const n = node / width
    for (let e = firstEdge[n] as number, end = e + (s.nodes[node + edgeCountAt] as number) * ew; e < end; e += ew) {
      const type = edgeTypes[s.edges[e + edgeTypeAt] as number]
      if (type !== 'element' && type !== 'hidden' && s.strings[s.edges[e + edgeNameAt] as number] === name) return s.edges[e + toAt] as number
    }
    return undefined
  }
  const nameOf = (node: number | undefined): string => (node === undefined ? '?' : s.strings[s.nodes[node + nameAt] as number] ?? '?')
  const lineOf = new Map<number, number>()
  const locations = (s as unknown as { locations?: number[] }).locations ?? []
  for (let i = 0; i < locations.length; i += 4) lineOf.set(locations[i] as number, (locations[i + 2] as number) + 1)
  const groups = new Map<string, { bytes: number; count: number }>()
  for (let i = 0; i < s.nodes.length; i += width) {
    if (types[s.nodes[i + typeAt] as number] !== 'closure') continue
    const shared = edgeTo(i, 'shared')
    const script = shared === undefined ? undefined : edgeTo(shared, 'script')
    const file = script === undefined ? '?' : nameOf(edgeTo(script, 'name')).replace(`file://${root}`, '').replace(root, '')
    const context = edgeTo(i, 'context')
    const key = `${nameOf(i) || '(anonymous)'} ${file}:${lineOf.get(i) ?? '?'}`
    const g = groups.get(key) ?? { bytes: 0, count: 0 }
    g.bytes += (s.nodes[i + sizeAt] as number) + (context === undefined ? 0 : (s.nodes[context + sizeAt] as number))
    g.count++
    groups.set(key, g)
  }
  return groups
}
