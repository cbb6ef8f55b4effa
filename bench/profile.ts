/**
 * Summarises a V8 .cpuprofile (from --cpu-prof): top functions by self time, and keyvalet's own
 * functions (src/) by inclusive time. `node bench/profile.ts FILE.cpuprofile [TOP]` prints it.
 * A window (µs on the monotonic clock: a profile's timestamps are process.hrtime's, in µs) keeps
 * only the samples taken inside it, e.g. a phase's measured part without keyvalet's start-up.
 */

import { readFileSync } from 'node:fs'

interface CallFrame { functionName: string; url: string; lineNumber: number; columnNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface CpuProfile { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] }

export interface ProfileRow { readonly name: string; readonly where: string; readonly ms: number; readonly pct: number; readonly pctBusy: number }

export interface ProfileSummary {
  readonly totalMs: number
  readonly idleMs: number
  readonly busyMs: number
  readonly gcMs: number
  readonly self: readonly ProfileRow[]
  /** keyvalet's own functions (url under /src/), inclusive of what they call. */
  readonly inclusiveSrc: readonly ProfileRow[]
  /** Self time grouped by file (node internals by module, dependencies by package). */
  readonly byFile: readonly ProfileRow[]
}

function where(cf: CallFrame, repoRoot: string): string {
  if (cf.url === '') return '(native)'
  const url = cf.url.replace(/^file:\/\//, '').replace(repoRoot, '')
  return `${url}:${cf.lineNumber + 1}`
}

function fileGroup(cf: CallFrame, repoRoot: string): string {
  if (cf.url === '') return cf.functionName.startsWith('(') ? cf.functionName : '(native)'
  const url = cf.url.replace(/^file:\/\//, '').replace(repoRoot, '')
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  return pkg !== null ? `npm:${pkg[1]}` : url
}

export function summariseProfile(file: string, repoRoot: string, top = 25, window?: { readonly from: number; readonly to: number }): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
  const byId = new Map<number, ProfileNode>()
  const parent = new Map<number, number>()
  for (const n of profile.nodes) {
    byId.set(n.id, n)
    for (const c of n.children ?? []) parent.set(c, n.id)
  }
  const root = repoRoot.endsWith('/') ? repoRoot : `${repoRoot}/`
  const key = (cf: CallFrame): string => `${cf.functionName || '(anonymous)'}\u0000${where(cf, root)}`
  const self = new Map<string, number>()
  const inclusive = new Map<string, number>()
  const files = new Map<string, number>()
  let total = 0
  let idle = 0
  let gc = 0
  let at = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0
    if (window !== undefined && (at < window.from || at > window.to)) continue
    const dt = (profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0) / 1000
    const node = byId.get(profile.samples[i] as number)
    if (node === undefined) continue
    total += dt
    const cf = node.callFrame
    if (cf.functionName === '(idle)') idle += dt
    if (cf.functionName === '(garbage collector)') gc += dt
    self.set(key(cf), (self.get(key(cf)) ?? 0) + dt)
    files.set(fileGroup(cf, root), (files.get(fileGroup(cf, root)) ?? 0) + dt)
    const seen = new Set<string>()
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const f = (byId.get(id) as ProfileNode).callFrame
      if (!f.url.includes('/src/')) continue
      const k = key(f)
      if (seen.has(k)) continue
      seen.add(k)
      inclusive.set(k, (inclusive.get(k) ?? 0) + dt)
    }
  }
  const busy = total - idle
  const rows = (m: Map<string, number>, n: number): ProfileRow[] => [...m.entries()]
    .sort((a, b) => b[1] - a[1]).slice(0, n)
    .map(([k, ms]) => {
      const [name, w] = k.split('\u0000') as [string, string?]
      return { name, where: w ?? '', ms, pct: (100 * ms) / total, pctBusy: (100 * ms) / busy }
    })
  return { totalMs: total, idleMs: idle, busyMs: busy, gcMs: gc, self: rows(self, top), inclusiveSrc: rows(inclusive, top), byFile: rows(files, 15) }
}

export function formatProfile(s: ProfileSummary): string {
  const out: string[] = []
  out.push(`profile: ${(s.totalMs / 1000).toFixed(1)} s sampled, ${(s.busyMs / 1000).toFixed(1)} s busy (${((100 * s.busyMs) / s.totalMs).toFixed(0)} %), GC ${((100 * s.gcMs) / s.busyMs).toFixed(1)} % of busy`)
  const table = (title: string, rows: readonly ProfileRow[]): void => {
    out.push('', title, `  ${'% busy'.padStart(6)}  ${'ms'.padStart(8)}  function  (location)`)
    for (const r of rows) out.push(`  ${r.pctBusy.toFixed(1).padStart(6)}  ${r.ms.toFixed(0).padStart(8)}  ${r.name}  (${r.where})`)
  }
  table('top self time', s.self.filter((r) => r.name !== '(idle)'))
  table('self time by file / package', s.byFile.filter((r) => r.name !== '(idle)').map((r) => ({ ...r, where: '' })))
  table('keyvalet functions (src/), inclusive time', s.inclusiveSrc)
  return out.join('\n')
}

if (import.meta.main) {
  const file = process.argv[2]
  if (file === undefined) {
    process.stderr.write('usage: node bench/profile.ts FILE.cpuprofile [TOP]\n')
    process.exit(2)
  }
  const repo = new URL('..', import.meta.url).pathname
  process.stdout.write(`${formatProfile(summariseProfile(file, repo, Number(process.argv[3] ?? 25)))}\n`)
}
