// @ts-check
/**
 * Audit explorer (admin, auditor): records matching the filters, newest first, a page at a time;
 * a live tail of the records after the newest one shown, with the same filters (GET
 * /v1/audit/stream with after=SEQ, so none is missed between the search and the tail); one record's every
 * field; and "verify chain" (POST /v1/audit/verify). Every value is shown as text.
 */
import { api, follow, withQuery } from '../api.js'
import { el, field, formValue, replace } from '../dom.js'

const TEXT_FILTERS = ['agent', 'user', 'workspace', 'task', 'session', 'connector', 'error']
/** Rows the live tail keeps on screen. */
const TAIL_ROWS = 200

/** How a chain is named: '' holds the records from before each keyvalet instance had its own chain. */
function chainName(/** @type {string} */ instance) {
  return instance === '' ? 'the chain from before per-instance chains' : `instance ${instance}`
}

/** @type {import('../page.js').Page} */
export function auditPage(main, ctx) {
  const detail = el('section', { class: 'created', tabindex: '-1', 'aria-live': 'polite', 'data-testid': 'record-detail' })
  const verified = el('p', { 'data-testid': 'verify-result' })
  const results = el('div', {})
  const tailRows = el('tbody', {})
  const tailState = el('span', { 'data-testid': 'tail-state' }, 'stopped')
  const tailButton = el('button', { type: 'button', 'aria-pressed': 'false' }, 'Start live tail')
  const form = el('form', { class: 'card filters', role: 'search', 'aria-labelledby': 'aud-find' },
    el('h2', { id: 'aud-find' }, 'Find records'),
    el('div', { class: 'columns' },
      field('Since', { name: 'since', type: 'datetime-local', step: 1 }),
      field('Until', { name: 'until', type: 'datetime-local', step: 1 }),
      TEXT_FILTERS.map((name) => field(name === 'error' ? 'Error code' : name[0]?.toUpperCase() + name.slice(1), { name, autocomplete: 'off', spellcheck: 'false' })),
      el('label', { class: 'field' }, el('span', {}, 'Decision'), el('select', { name: 'decision' },
        el('option', { value: '' }, 'any'), el('option', { value: 'allow' }, 'allow'), el('option', { value: 'deny' }, 'deny'), el('option', { value: 'error' }, 'error')))),
    el('div', { class: 'actions' },
      el('button', { type: 'submit' }, 'Search'),
      tailButton,
      el('button', { type: 'button', onclick: () => void verify() }, 'Verify chain')),
    el('p', {}, 'Live tail: ', tailState), verified)
  main.append(form, detail,
    el('section', { class: 'card wide', 'aria-labelledby': 'aud-tail' }, el('h2', { id: 'aud-tail' }, 'Live tail'),
      el('div', { class: 'scroll' }, el('table', { 'data-testid': 'tail' }, el('caption', {}, 'New records, newest first'), headRow(), tailRows))),
    results)

  /** @type {AbortController | undefined} */
  let tail
  /** @type {Record<string, string>} */
  let filter = {}
  /** The newest record of the last search: the live tail goes on from it (none: from when it opens). @type {string | undefined} */
  let newest

  const currentFilter = () => {
    /** @type {Record<string, string>} */
    const wanted = {}
    for (const name of [...TEXT_FILTERS, 'decision']) if (formValue(form, name) !== '') wanted[name] = formValue(form, name)
    for (const name of ['since', 'until']) {
      const local = formValue(form, name)
      if (local !== '') wanted[name] = new Date(local).toISOString()
    }
    return wanted
  }

  /** @param {any} record */
  const row = (record) => el('tr', {}, cells(record).map((c, i) => el('td', { 'data-label': HEADINGS[i] }, c)),
    el('td', { 'data-label': 'Record' }, el('button', { type: 'button', 'aria-label': `Details of record ${record.seq}`, onclick: () => showDetail(detail, record) }, 'Details')))

  /** @param {string | undefined} cursor */
  async function search(cursor) {
    try {
      const page = await api('GET', withQuery('/v1/audit', { ...filter, limit: 50, cursor }))
      if (cursor === undefined) newest = page.cursors[0]
      const shown = el('div', { class: 'scroll' }, el('table', { 'data-testid': 'records' }, el('caption', {}, 'Records, newest first'), headRow(),
        el('tbody', {}, page.records.length === 0 ? el('tr', {}, el('td', { colspan: HEADINGS.length + 1 }, 'None.')) : page.records.map(row))))
      const more = page.next_cursor === null ? null : el('button', { type: 'button', onclick: () => void search(page.next_cursor) }, 'Older records')
      replace(results, shown, more)
    } catch (err) {
      ctx.fail(err)
    }
  }

  function startTail() {
    tail = new AbortController()
    const mine = tail
    replace(tailRows)
    tailButton.setAttribute('aria-pressed', 'true')
    replace(tailButton, 'Stop live tail')
    replace(tailState, 'connecting…')
    follow(withQuery('/v1/audit/stream', { ...filter, after: newest }), mine.signal, (event) => {
      if (event.type === 'dropped') replace(tailState, 'stopped: the console fell behind; start it again')
      if (event.type !== 'record') return
      tailRows.prepend(row(JSON.parse(event.data)))
      while (tailRows.childElementCount > TAIL_ROWS) tailRows.lastElementChild?.remove()
    }, () => replace(tailState, 'following')).then(() => {
      if (!mine.signal.aborted) replace(tailState, 'stopped: the stream ended')
    }, (err) => {
      if (!mine.signal.aborted) ctx.fail(err)
    }).finally(() => {
      if (tail === mine) stopTail()
    })
  }

  function stopTail() {
    tail?.abort()
    tail = undefined
    tailButton.setAttribute('aria-pressed', 'false')
    replace(tailButton, 'Start live tail')
    if (tailState.textContent === 'following' || tailState.textContent === 'connecting…') replace(tailState, 'stopped')
  }

  async function verify() {
    replace(verified, 'Verifying…')
    try {
      const result = await api('POST', '/v1/audit/verify')
      replace(verified, result.ok
        ? `Every chain intact: ${result.count} records in ${result.chains.length} chain${result.chains.length === 1 ? '' : 's'}${result.chains.map((/** @type {{ instance: string, count: number, last_hash: string }} */ c) => `; ${chainName(c.instance)}: ${c.count} records, last hash ${c.last_hash}`).join('')}.`
        : `Chain of ${chainName(result.instance ?? '')} broken at record ${result.seq}: ${result.problem} (${result.count} records verified before it). ${result.message ?? ''}`)
    } catch (err) {
      replace(verified)
      ctx.fail(err)
    }
  }

  tailButton.addEventListener('click', () => (tail === undefined ? startTail() : stopTail()))
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    filter = currentFilter()
    const following = tail !== undefined
    stopTail()
    void search(undefined).then(() => { if (following) startTail() })
  })
  void search(undefined)
  return stopTail
}

const HEADINGS = ['Seq', 'Time', 'Decision', 'Status', 'Code', 'Connector', 'Method', 'Path', 'Agent', 'Task']

function headRow() {
  return el('thead', {}, el('tr', {}, HEADINGS.map((h) => el('th', { scope: 'col' }, h)), el('th', { scope: 'col' }, 'Record')))
}

/** @param {any} r */
function cells(r) {
  return [String(r.seq ?? ''), String(r.time ?? ''), String(r.decision ?? ''), String(r.status ?? ''), String(r.error ?? r.reason ?? ''),
    String(r.connector ?? ''), String(r.method ?? ''), el('code', {}, String(r.path ?? '')), String(r.agent ?? ''), String(r.task ?? '')]
}

/**
 * Every field of one record, values as text (objects as indented JSON).
 * @param {HTMLElement} where
 * @param {Record<string, unknown>} record
 */
function showDetail(where, record) {
  replace(where,
    el('h2', {}, `Record ${String(record.seq)}`),
    el('dl', { class: 'facts' }, Object.entries(record).flatMap(([name, value]) => [
      el('dt', {}, name),
      el('dd', {}, typeof value === 'object' && value !== null ? el('pre', {}, JSON.stringify(value, null, 2)) : String(value)),
    ])),
    el('button', { type: 'button', onclick: () => replace(where) }, 'Close'))
  where.focus()
}
