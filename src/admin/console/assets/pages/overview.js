// @ts-check
/**
 * Overview: readiness (/readyz), live sessions (/v1/sessions, for the roles that may list them),
 * and the request rate and refusals by code from the Prometheus counters of /metrics (for the
 * roles that may read them), refreshed every 10 s while the page is shown and the tab visible.
 */
import { api } from '../api.js'
import { el, replace, table } from '../dom.js'

/** Each refresh is two or three admin calls, each an audit record: often enough to watch, no more. */
const REFRESH_MS = 10_000
/** At most this many pages of sessions are read to count the live ones. */
const MAX_SESSION_PAGES = 5

/** @type {import('../page.js').Page} */
export function overviewPage(main, ctx) {
  const readiness = el('section', { class: 'card', 'aria-labelledby': 'ov-ready' }, el('h2', { id: 'ov-ready' }, 'Readiness'))
  const traffic = el('section', { class: 'card', 'aria-labelledby': 'ov-traffic' }, el('h2', { id: 'ov-traffic' }, 'Requests'))
  const live = el('section', { class: 'card wide', 'aria-labelledby': 'ov-live' }, el('h2', { id: 'ov-live' }, 'Live sessions'))
  const mayList = ctx.me.role !== 'auditor'
  const mayMeasure = ctx.me.role !== 'operator' && ctx.has('GET /metrics')
  main.append(el('div', { class: 'grid' }, readiness, mayMeasure && traffic, mayList && live))
  /** @type {{ at: number, total: number } | undefined} */
  let previous

  async function refresh() {
    const [ready, metrics, sessions] = await Promise.allSettled([
      readyz(),
      mayMeasure ? api('GET', '/metrics') : Promise.resolve(''),
      mayList ? liveSessions() : Promise.resolve([]),
    ])
    if (ready.status === 'fulfilled') {
      const body = ready.value
      replace(readiness, el('h2', { id: 'ov-ready' }, 'Readiness'),
        el('p', { class: `badge ${body.status === 'ready' ? 'ok' : 'bad'}`, 'data-testid': 'readiness' }, body.status === 'ready' ? 'Ready' : 'Not ready'),
        el('ul', { class: 'checks' }, Object.entries(body.checks).map(([name, why]) => el('li', {}, el('strong', {}, name), ': ', String(why)))))
    }
    if (mayMeasure && metrics.status === 'fulfilled') {
      const counts = requestCounts(String(metrics.value))
      const now = performance.now()
      const rate = previous === undefined ? undefined : ((counts.total - previous.total) * 1000) / (now - previous.at)
      previous = { at: now, total: counts.total }
      replace(traffic, el('h2', { id: 'ov-traffic' }, 'Requests'),
        el('dl', { class: 'facts' },
          el('dt', {}, 'Since start'), el('dd', { 'data-testid': 'requests-total' }, String(counts.total)),
          el('dt', {}, 'Rate'), el('dd', {}, rate === undefined ? 'measuring…' : `${rate.toFixed(2)} per second`),
          el('dt', {}, 'Refused'), el('dd', { 'data-testid': 'refusals-total' }, String(counts.refused))),
        table('Refusals by code', ['Code', 'Requests'], [...counts.byCode].sort((a, b) => b[1] - a[1]).map(([code, n]) => [code, String(n)])))
    }
    if (mayList && sessions.status === 'fulfilled') {
      const list = sessions.value
      replace(live, el('h2', { id: 'ov-live' }, 'Live sessions'),
        el('p', {}, el('span', { 'data-testid': 'live-count' }, String(list.length)), ' active'),
        table('Most recent live sessions', ['Agent', 'User', 'Workspace', 'Task', 'Grants', 'Expires'],
          list.slice(-10).reverse().map((/** @type {any} */ s) => [s.agent, s.user, s.workspace, s.task, s.grants.join(' '), s.expires_at])))
    }
    const failed = [ready, metrics, sessions].find((r) => r.status === 'rejected')
    if (failed !== undefined) ctx.fail(failed.reason)
  }

  void refresh()
  const timer = setInterval(() => { if (document.visibilityState === 'visible') void refresh() }, REFRESH_MS)
  return () => clearInterval(timer)
}

/** /readyz answers 503 with the same document when a check fails. */
async function readyz() {
  const res = await fetch('/readyz', { cache: 'no-store', credentials: 'omit' })
  return res.json()
}

async function liveSessions() {
  /** @type {any[]} */
  const live = []
  /** @type {string | undefined} */
  let cursor
  for (let page = 0; page < MAX_SESSION_PAGES; page++) {
    const body = await api('GET', `/v1/sessions?limit=500${cursor === undefined ? '' : `&cursor=${encodeURIComponent(cursor)}`}`)
    live.push(...body.sessions.filter((/** @type {any} */ s) => s.state === 'active'))
    if (body.next_cursor === null) break
    cursor = body.next_cursor
  }
  return live
}

/**
 * keyvalet_requests_total{mode,connector,decision,error} → all requests, the refused ones, and
 * the refused ones by error code.
 * @param {string} exposition
 */
export function requestCounts(exposition) {
  let total = 0
  let refused = 0
  /** @type {Map<string, number>} */
  const byCode = new Map()
  for (const line of exposition.split('\n')) {
    const match = /^keyvalet_requests_total\{([^}]*)\} (\S+)$/.exec(line)
    if (match === null) continue
    const labels = Object.fromEntries([...(match[1] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]))
    const value = Number(match[2])
    total += value
    if (labels.decision !== 'allow') {
      refused += value
      byCode.set(labels.error ?? 'unknown', (byCode.get(labels.error ?? 'unknown') ?? 0) + value)
    }
  }
  return { total, refused, byCode }
}
