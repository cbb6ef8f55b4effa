// @ts-check
/**
 * Budgets (admin, operator): for each live session, what it has used and has left of every budget
 * that applies to it, one row per limit (GET /v1/sessions?budgets=true: a page of sessions and
 * their use in one call), filtered like the sessions page, read again every 10 s while the tab is
 * visible. Counted in the store, so the numbers are the fleet's, not this instance's.
 */
import { api, withQuery } from '../api.js'
import { barCell } from '../charts.js'
import { el, field, formValue, replace, table } from '../dom.js'

const FILTERS = ['agent', 'user', 'workspace', 'task']
const REFRESH_MS = 10_000
const PAGE_SIZE = 100

/** @type {import('../page.js').Page} */
export function budgetsPage(main, ctx) {
  const results = el('div', { 'data-testid': 'budgets' })
  const pager = el('div', { class: 'actions' })
  const form = el('form', { class: 'card filters', role: 'search', 'aria-labelledby': 'bud-find' },
    el('h2', { id: 'bud-find' }, 'Find live sessions'),
    el('div', { class: 'columns' }, FILTERS.map((name) => field(name[0]?.toUpperCase() + name.slice(1), { name, autocomplete: 'off' }))),
    el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Filter')))
  main.append(el('p', {}, 'What each live session has used and has left of every budget and rate limit that applies to it, as the store counts it for every keyvalet instance.'), form, results, pager)

  /** @type {Record<string, string>} */
  let filter = {}
  /** The cursor of the page shown (undefined: the first). @type {string | undefined} */
  let shownCursor

  /**
   * Shows a page; a refresh (`again`) replaces the table only, so the pager's buttons keep focus.
   * @param {string | undefined} cursor
   * @param {boolean} [again]
   */
  async function show(cursor, again = false) {
    try {
      const page = await api('GET', withQuery('/v1/sessions', { ...filter, limit: PAGE_SIZE, cursor, budgets: 'true' }))
      shownCursor = cursor
      const live = page.sessions.filter((/** @type {any} */ s) => s.state === 'active')
      const rows = live.flatMap((/** @type {any} */ s) => {
        // A node per row: one node appended twice would move to the last row.
        const who = () => [el('code', {}, s.id), s.agent]
        if (s.budgets.length === 0) return [[...who(), 'none applies', '', '', '', '', '', '']]
        return s.budgets.map((/** @type {any} */ b) => [
          ...who(), b.budget, scope(b), String(b.used), String(b.left), String(b.limit), b.resets_at ?? 'at the session\'s end',
          barCell([{ value: Math.min(b.used, b.limit), class: b.left === 0 ? 'fill-refused' : 'fill-allow' }], b.limit),
        ])
      })
      replace(results, table(`Budget use of live sessions (${live.length} on this page)`, ['Session', 'Agent', 'Budget', 'Counts', 'Used', 'Left', 'Limit', 'Resets', 'Share'], rows))
      if (!again) {
        replace(pager,
          cursor === undefined ? null : el('button', { type: 'button', onclick: () => void show(undefined) }, 'First page'),
          page.next_cursor === null ? null : el('button', { type: 'button', onclick: () => void show(page.next_cursor) }, 'Next page'))
      }
    } catch (err) {
      ctx.fail(err)
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault()
    filter = Object.fromEntries(FILTERS.map((name) => [name, formValue(form, name)]).filter(([, v]) => v !== ''))
    void show(undefined)
  })
  void show(undefined)
  const timer = setInterval(() => { if (document.visibilityState === 'visible') void show(shownCursor, true) }, REFRESH_MS)
  return () => clearInterval(timer)
}

/**
 * What a limit counts, and for whom: "requests, per agent, connector github, rule delete-branch".
 * @param {{ metric: string, per: string, connector: string | null, rule: string | null }} use
 */
function scope(use) {
  return [use.metric, use.per === 'this session' ? 'the session\'s own' : `per ${use.per}`, use.connector === null ? '' : `connector ${use.connector}`, use.rule === null ? '' : `rule ${use.rule}`].filter((t) => t !== '').join(', ')
}
