// @ts-check
/**
 * Overview: readiness (/readyz); the pending approvals (GET /v1/approvals), for the roles that
 * decide them; the requests of the last hour (GET /v1/audit/summary: per 5
 * minutes as a chart, refusals by code, the busiest connectors and agents) and the audit chain's
 * state (POST /v1/audit/verify, once when the page opens and on demand: it walks the whole chain),
 * for the roles that read the audit; the live sessions, for the roles that list them. All but the
 * chain are read again every 10 s while the page is shown and the tab visible.
 */
import { api } from '../api.js'
import { barCell, columnChart, legend } from '../charts.js'
import { pendingSummary } from './approvals.js'
import { el, replace, table } from '../dom.js'

/** Each refresh is two to four admin calls, each an audit record: often enough to watch, no more. */
const REFRESH_MS = 10_000
/** At most this many pages of sessions are read to count the live ones. */
const MAX_SESSION_PAGES = 5
const SERIES = [{ name: 'allowed', class: 'fill-allow' }, { name: 'refused', class: 'fill-refused' }]

/** @type {import('../page.js').Page} */
export function overviewPage(main, ctx) {
  const card = (/** @type {string} */ id, /** @type {string} */ title, wide = false) => el('section', { class: `card${wide ? ' wide' : ''}`, 'aria-labelledby': id }, el('h2', { id }, title))
  const readiness = card('ov-ready', 'Readiness')
  const chain = card('ov-chain', 'Audit chain')
  const traffic = card('ov-traffic', 'Requests, last hour', true)
  const refusals = card('ov-refusals', 'Refusals by code, last hour')
  const connectors = card('ov-connectors', 'Busiest connectors, last hour')
  const agents = card('ov-agents', 'Busiest agents, last hour')
  const live = card('ov-live', 'Live sessions', true)
  const waiting = card('ov-approvals', 'Pending approvals')
  const totals = el('dl', { class: 'facts' })
  const figure = el('figure', { class: 'chart-figure', 'data-testid': 'rate-chart' })
  const numbers = el('div', {})
  const waitingNow = el('div', {})
  waiting.append(waitingNow, el('p', {}, el('a', { href: '#approvals' }, 'Decide them on the Approvals page')))
  traffic.append(totals, figure, el('details', {}, el('summary', {}, 'The numbers of the chart'), numbers))
  const readsAudit = ctx.me.role === 'admin' || ctx.me.role === 'auditor'
  const mayCount = readsAudit && ctx.has('GET /v1/audit/summary')
  const mayVerify = readsAudit && ctx.has('POST /v1/audit/verify')
  const mayList = (ctx.me.role === 'admin' || ctx.me.role === 'operator') && ctx.has('GET /v1/sessions')
  const mayDecide = ctx.me.role !== 'auditor' && ctx.has('GET /v1/approvals')
  main.append(el('div', { class: 'grid' }, readiness, mayDecide && waiting, mayVerify && chain, mayCount && [traffic, refusals, connectors, agents], mayList && live))

  async function refresh() {
    const [ready, summary, sessions, approvals] = await Promise.allSettled([
      readyz(),
      mayCount ? api('GET', '/v1/audit/summary') : Promise.resolve(undefined),
      mayList ? liveSessions() : Promise.resolve([]),
      mayDecide ? api('GET', '/v1/approvals') : Promise.resolve({ approvals: [] }),
    ])
    if (mayDecide && approvals.status === 'fulfilled') replace(waitingNow, pendingSummary(approvals.value.approvals))
    if (ready.status === 'fulfilled') {
      const body = ready.value
      replace(readiness, readiness.firstChild,
        el('p', { class: `badge ${body.status === 'ready' ? 'ok' : 'bad'}`, 'data-testid': 'readiness' }, body.status === 'ready' ? 'Ready' : 'Not ready'),
        el('ul', { class: 'checks' }, Object.entries(body.checks).map(([name, why]) => el('li', {}, el('strong', {}, name), ': ', String(why)))))
    }
    if (mayCount && summary.status === 'fulfilled') showSummary(summary.value)
    if (mayList && sessions.status === 'fulfilled') {
      const list = sessions.value
      replace(live, live.firstChild,
        el('p', {}, el('span', { 'data-testid': 'live-count' }, String(list.length)), ' active'),
        table('Most recent live sessions', ['Agent', 'User', 'Workspace', 'Task', 'Grants', 'Expires'],
          list.slice(-10).reverse().map((/** @type {any} */ s) => [s.agent, s.user, s.workspace, s.task, s.grants.join(' '), s.expires_at])))
    }
    const failed = [ready, summary, sessions, approvals].find((r) => r.status === 'rejected')
    if (failed !== undefined) ctx.fail(failed.reason)
  }

  /** @param {any} summary GET /v1/audit/summary's answer */
  function showSummary(summary) {
    /** @type {{ start: string, allow: number, would_deny: number, deny: number, error: number }[]} */
    const buckets = summary.buckets
    const allowed = buckets.reduce((n, b) => n + b.allow + b.would_deny, 0)
    const refused = buckets.reduce((n, b) => n + b.deny + b.error, 0)
    const minutes = (Date.parse(summary.until) - Date.parse(summary.since)) / 60_000
    const label = (/** @type {string} */ iso) => iso.slice(11, 16)
    const columns = buckets.map((b) => ({ label: label(b.start), values: [b.allow + b.would_deny, b.deny + b.error] }))
    const every = `per ${summary.bucket_minutes} minutes`
    replace(totals,
      el('dt', {}, 'Requests'), el('dd', { 'data-testid': 'requests-total' }, String(allowed + refused)),
      el('dt', {}, 'Refused'), el('dd', { 'data-testid': 'refusals-total' }, String(refused)),
      el('dt', {}, 'Rate'), el('dd', {}, `${((allowed + refused) / minutes).toFixed(2)} per minute`))
    replace(figure,
      columnChart(columns, SERIES, `Requests ${every} from ${label(summary.since)} to ${label(summary.until)} UTC: ${allowed} allowed, ${refused} refused`, Math.max(280, traffic.clientWidth - 34)),
      el('figcaption', {}, `Requests ${every}, UTC`, legend(SERIES)))
    // The details element stays, so an opened one stays open (and keeps focus) across refreshes.
    replace(numbers, table(`Requests ${every}, UTC`, ['From', 'Allowed', 'Refused'], buckets.map((b) => [label(b.start), String(b.allow + b.would_deny), String(b.deny + b.error)])))
    const most = Math.max(0, ...summary.refusals.map((/** @type {any} */ r) => r.count))
    replace(refusals, refusals.firstChild,
      table('Refused requests per error code', ['Code', 'Requests', 'Share'], summary.refusals.map((/** @type {any} */ r) => [
        el('code', {}, r.code), String(r.count), barCell([{ value: r.count, class: 'fill-refused' }], most)])))
    for (const [where, list, heading] of /** @type {const} */ ([[connectors, summary.connectors, 'Connector'], [agents, summary.agents, 'Agent']])) {
      const busiest = Math.max(0, ...list.map((/** @type {any} */ c) => c.requests))
      replace(where, where.firstChild,
        table(`${heading}s with the most requests`, [heading, 'Requests', 'Refused', 'Share'], list.map((/** @type {any} */ c) => [
          c.name, String(c.requests), String(c.refused),
          barCell([{ value: c.requests - c.refused, class: 'fill-allow' }, { value: c.refused, class: 'fill-refused' }], busiest)])))
    }
  }

  const verdict = el('div', {})
  const again = el('button', { type: 'button', onclick: () => void verify() }, 'Verify again')
  chain.append(verdict, again)
  /** One walk at a time (the button stays enabled so that it keeps the keyboard focus). */
  let verifying = false
  async function verify() {
    if (verifying) return
    verifying = true
    replace(verdict, el('p', { 'data-testid': 'chain-status' }, 'Verifying…'))
    try {
      const result = await api('POST', '/v1/audit/verify')
      replace(verdict,
        el('p', { class: `badge ${result.ok ? 'ok' : 'bad'}`, 'data-testid': 'chain-status' }, result.ok ? 'Intact' : 'Broken'),
        el('p', {}, result.ok
          ? `${result.count} records verified at ${new Date().toISOString().slice(11, 19)} UTC; last hash ${String(result.last_hash ?? '').slice(0, 16)}…`
          : `Record ${result.seq}: ${result.problem} (${result.count} records verified before it).`))
    } catch (err) {
      replace(verdict, el('p', { 'data-testid': 'chain-status' }, 'Not verified.'))
      ctx.fail(err)
    } finally {
      verifying = false
    }
  }

  void refresh()
  if (mayVerify) void verify()
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
