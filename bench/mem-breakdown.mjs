/**
 * Preload (`--import ./bench/mem-breakdown.mjs`) for bench/idle-memory.ts. Measurement only.
 * Plain JavaScript: a TypeScript preload would load Node's type stripper into the process measured.
 *
 * Every thread counts the modules it loads (node:module registerHooks sees both import and
 * require). With MEM_BREAKDOWN_DIR set:
 * - worker threads (the audit writer's) write `thread-<id>.json` every 500 ms: their isolate's
 *   v8.getHeapStatistics() and module count;
 * - the main thread, on SIGUSR2, writes `main.json`: process.memoryUsage(), v8 heap statistics
 *   and heap spaces, before and after a full GC, and the loaded modules grouped by package; then,
 *   with MEM_BREAKDOWN_SNAPSHOT=1, a heap snapshot `main.heapsnapshot` beside it (the snapshot
 *   itself grows RSS: it is taken after the figures). It also holds the main thread's garbage
 *   collections since start (count and ms by kind, from perf_hooks) beside process.cpuUsage(), so
 *   that what a heap flag costs in collection time can be read against the CPU the process used.
 */
import { writeFileSync } from 'node:fs'
import { registerHooks } from 'node:module'
import { join } from 'node:path'
import { PerformanceObserver, constants } from 'node:perf_hooks'
import v8 from 'node:v8'
import vm from 'node:vm'
import { isMainThread, threadId } from 'node:worker_threads'

const dir = process.env.MEM_BREAKDOWN_DIR
/** @type {string[]} */
const loaded = []
registerHooks({
  load(url, context, nextLoad) {
    loaded.push(url)
    return nextLoad(url, context)
  },
})

/** `node:fs` → builtin; …/node_modules/@scope/pkg/… → @scope/pkg; the repository's files → their top folder. */
/** @param {string} url */
function moduleGroup(url) {
  if (url.startsWith('node:') || !url.includes(':')) return 'node: builtins'
  const path = url.replace(/^file:\/\//, '')
  const nm = path.lastIndexOf('/node_modules/')
  if (nm >= 0) {
    const rest = path.slice(nm + '/node_modules/'.length).split('/')
    return rest[0]?.startsWith('@') === true ? `${rest[0]}/${rest[1]}` : (rest[0] ?? path)
  }
  const src = /\/(src|bench|test)\/(?:([^/]+)\/)?/.exec(path)
  return src === null ? path : `${src[1]}/${src[2] ?? ''}`
}

function groups() {
  /** @type {Record<string, number>} */
  const counts = {}
  for (const url of loaded) {
    const g = moduleGroup(url)
    counts[g] = (counts[g] ?? 0) + 1
  }
  return Object.fromEntries(Object.entries(counts).sort((a, b) => b[1] - a[1]))
}

function heap() {
  return {
    memoryUsage: process.memoryUsage(),
    heapStatistics: v8.getHeapStatistics(),
    heapSpaces: Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size, committed: s.physical_space_size }])),
    codeStatistics: v8.getHeapCodeStatistics(),
  }
}

/** @type {Record<number, string>} */
const KINDS = { [constants.NODE_PERFORMANCE_GC_MINOR]: 'scavenge', [constants.NODE_PERFORMANCE_GC_MAJOR]: 'mark-compact', [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental', [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak callbacks' }
/** @type {Record<string, { count: number, ms: number }>} */
const collections = {}

if (dir !== undefined && dir !== '') {
  if (isMainThread) {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const kind = KINDS[e.detail?.kind ?? -1] ?? 'other'
        const c = (collections[kind] ??= { count: 0, ms: 0 })
        c.count++
        c.ms += e.duration
      }
    }).observe({ entryTypes: ['gc'] })
    process.on('SIGUSR2', () => {
      const gcSoFar = structuredClone(collections)
      const cpu = process.cpuUsage()
      const before = heap()
      v8.setFlagsFromString('--expose-gc')
      const gc = vm.runInNewContext('gc')
      gc()
      const after = heap()
      const builtins = process.moduleLoadList?.length
      writeFileSync(join(dir, 'main.json'), JSON.stringify({ before, afterGc: after, modules: { loaded: loaded.length, groups: groups(), internalLoadList: builtins }, gc: gcSoFar, cpuMs: (cpu.user + cpu.system) / 1000 }))
      if (process.env.MEM_BREAKDOWN_SNAPSHOT === '1') v8.writeHeapSnapshot(join(dir, 'main.heapsnapshot'))
      // The reader waits for this marker: main.json (and the snapshot) are whole by then.
      writeFileSync(join(dir, 'main.done'), '')
    })
  } else {
    const write = () => writeFileSync(join(dir, `thread-${threadId}.json`), JSON.stringify({ threadId, heapStatistics: v8.getHeapStatistics(), modules: { loaded: loaded.length, groups: groups() } }))
    setInterval(write, 500).unref()
    write()
  }
}
