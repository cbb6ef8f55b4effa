/**
 * How keyvalet's resident memory moves over its first requests, and where: starts keyvalet with the
 * bench's config (bench/keyvalet.ts, through bin/keyvalet), sends N sequential GET /echo/items/…,
 * and after start and after each of the first few requests prints VmRSS (anonymous and
 * file-backed) and the anonymous mappings that grew since the line before (a glibc arena of a
 * thread shows as a 64 MiB-aligned rw-p mapping; V8's heap as 256 KiB-aligned pages).
 * Measurement tool, not part of `npm run bench`: e.g. it showed ~10 MiB of one native burst
 * (V8 optimising undici's WebAssembly parser on a worker thread at about the 3rd request) staying
 * resident in a thread's arena, which glibc's dynamic trim threshold kept (see bin/keyvalet).
 *
 * Usage: node bench/first-requests-rss.ts [--requests 20] [--runs N]
 *   The environment passes to keyvalet (e.g. GLIBC_TUNABLES=… to compare malloc settings).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { request } from 'undici'
import { Children } from './children.ts'
import { startKeyvalet } from './keyvalet.ts'

const REPO = fileURLToPath(new URL('..', import.meta.url))
const { values } = parseArgs({ options: { requests: { type: 'string', default: '20' }, runs: { type: 'string', default: '1' } } })
const REQUESTS = Number(values.requests)
/** The requests after which a line is printed (and the last one). */
const REPORTED = new Set([1, 2, 3, 4, 5, 10, REQUESTS])

/** Anonymous KiB by mapping start address. */
function anonymousMappings(pid: number): Map<string, { range: string; kib: number }> {
  const maps = new Map<string, { range: string; kib: number }>()
  let current: { range: string; kib: number } | undefined
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+)/.exec(line)
    if (head !== null) {
      current = { range: `${head[1]}-${head[2]} ${head[3]}`, kib: 0 }
      maps.set(head[1] ?? '', current)
    } else if (line.startsWith('Anonymous:') && current !== undefined) {
      current.kib += Number(/(\d+)/.exec(line)?.[1])
    }
  }
  return maps
}

function status(pid: number): string {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8')
  const mib = (field: string): string => (Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1]) / 1024).toFixed(1).padStart(6)
  return `VmRSS ${mib('VmRSS')} MiB = anonymous ${mib('RssAnon')} + file-backed ${mib('RssFile')}; ${/^Threads:\s+(\d+)/m.exec(text)?.[1]} threads`
}

const children = new Children()
const tmp = mkdtempSync(join(tmpdir(), 'first-requests-rss-'))
try {
  for (let run = 0; run < Number(values.runs); run++) {
    const dir = join(tmp, `run-${run}`)
    mkdirSync(dir)
    const upstream = children.fork('upstream', join(REPO, 'bench/upstream.ts'))
    const { port } = await upstream.waitForMessage<{ port: number }>((m) => typeof (m as { port?: unknown }).port === 'number', 15_000)
    const kv = await startKeyvalet({ children, repo: REPO, dir, upstreamPort: port, nodeFlags: [] })
    const pid = kv.process.pid
    const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 300))
    await settle()
    process.stdout.write(`\n== run ${run + 1}\nafter start       ${status(pid)}\n`)
    let before = anonymousMappings(pid)
    for (let i = 1; i <= REQUESTS; i++) {
      const res = await request(`${kv.url}/echo/items/${i}`, { headers: { authorization: `Bearer ${kv.key}` } })
      await res.body.text()
      if (res.statusCode !== 200) throw new Error(`request ${i}: ${res.statusCode}`)
      if (!REPORTED.has(i)) continue
      await settle()
      const now = anonymousMappings(pid)
      const grown = [...now].map(([start, m]) => ({ ...m, grew: m.kib - (before.get(start)?.kib ?? 0) })).filter((m) => m.grew >= 512).sort((a, b) => b.grew - a.grew)
      process.stdout.write(`after request ${String(i).padEnd(3)} ${status(pid)}${grown.map((m) => `\n    +${(m.grew / 1024).toFixed(1)} MiB anonymous in ${m.range}`).join('')}\n`)
      before = now
    }
    await kv.process.stop(10_000)
    await upstream.stop(2000)
  }
} finally {
  await children.stopAll()
  rmSync(tmp, { recursive: true, force: true })
}
