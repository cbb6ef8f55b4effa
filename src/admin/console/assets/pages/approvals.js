// @ts-check
/**
 * Approvals (admin, operator): the requests parked until a person decides, oldest first, kept
 * current by a long poll (GET /v1/approvals?wait=…&after=…, which answers as soon as a request newer
 * than the newest shown is parked, else when the wait ends). Each shows who asks, exactly what will
 * be sent (method, host, path, the summary of its body, the digest of its bytes) and until when it
 * waits; approve it, approve it and let identical requests of the session through for some
 * minutes, or deny it with a reason the sandbox is told. A card stays the same element while its
 * request is pending, so a reason being typed and the focus survive every update.
 */
import { api, ApiError, withQuery } from '../api.js'
import { el, field, formValue } from '../dom.js'

/** Seconds a long poll waits for a new request (the API allows 60). */
const WAIT_S = 25
/** After a failed poll, the next one waits this long. */
const RETRY_MS = 5_000

/** @type {import('../page.js').Page} */
export function approvalsPage(main, ctx) {
  const count = el('p', { class: 'pending-count', tabindex: '-1', 'aria-live': 'polite', 'data-testid': 'pending-count' }, 'Loading…')
  const list = el('div', { class: 'approvals' })
  main.append(el('p', {}, 'Requests parked until a person decides. Approving forwards exactly the request shown here (its digest names its bytes); denying refuses it and tells the sandbox your reason.'), count, list)
  /** The card of each pending request shown, by approval id. @type {Map<string, HTMLElement>} */
  const cards = new Map()
  const stop = new AbortController()
  /** created_at of the newest request shown: the long poll waits for one newer. @type {string | undefined} */
  let newest

  /** @param {any[]} approvals the pending requests, oldest first */
  function show(approvals) {
    const pending = approvals.filter((a) => a.state === 'pending')
    const ids = new Set(pending.map((a) => a.id))
    for (const [id, card] of cards) if (!ids.has(id)) drop(id, card)
    // A new request is newer than every one shown: appended, it leaves the others (and the focus) where they are.
    for (const a of pending) {
      if (cards.has(a.id)) continue
      const card = approvalCard(a)
      cards.set(a.id, card)
      list.append(card)
      if (newest === undefined || a.created_at > newest) newest = a.created_at
    }
    counted()
  }

  function counted() {
    const text = cards.size === 0 ? 'No request is waiting.' : `${cards.size} request${cards.size === 1 ? '' : 's'} waiting.`
    if (count.textContent !== text) count.textContent = text
  }

  /**
   * Removes a card; if the focus was in it, the next card (or the count) takes it.
   * @param {string} id
   * @param {HTMLElement} card
   */
  function drop(id, card) {
    const hadFocus = card.contains(document.activeElement)
    const next = /** @type {HTMLElement | null} */ (card.nextElementSibling ?? card.previousElementSibling)
    card.remove()
    cards.delete(id)
    counted()
    if (hadFocus) (next ?? count).focus()
  }

  /** @param {any} a */
  function approvalCard(a) {
    const headingId = `apr-${a.id}`
    const what = `${a.method} ${a.host}${a.path}`
    const approve = el('button', { type: 'button' }, 'Approve')
    const lasting = el('form', { class: 'inline', 'aria-label': `Approve for a while: ${what}` },
      field('Let identical requests of this session through for (minutes)', { name: 'minutes', type: 'number', min: 1, max: 1440, value: 15, required: true }),
      el('button', { type: 'submit' }, 'Approve for these minutes'))
    const deny = el('form', { class: 'inline', 'aria-label': `Deny: ${what}` },
      field('Reason for denying (the sandbox is told)', { name: 'reason', required: true, maxlength: 500, autocomplete: 'off' }),
      el('button', { type: 'submit' }, 'Deny'))
    const card = el('article', { class: 'card approval', tabindex: '-1', 'aria-labelledby': headingId, 'data-approval': a.id },
      el('h2', { id: headingId }, el('code', {}, what)),
      el('dl', { class: 'facts' },
        el('dt', {}, 'Agent'), el('dd', {}, a.agent),
        el('dt', {}, 'User'), el('dd', {}, a.user),
        el('dt', {}, 'Workspace'), el('dd', {}, a.workspace),
        el('dt', {}, 'Task'), el('dd', {}, a.task),
        el('dt', {}, 'Session'), el('dd', {}, el('code', {}, a.session)),
        el('dt', {}, 'Connector, rule'), el('dd', {}, `${a.connector}, ${a.rule}`),
        el('dt', {}, 'Summary'), el('dd', {}, el('pre', { 'data-field': 'summary' }, a.summary)),
        el('dt', {}, 'Digest'), el('dd', {}, el('code', { 'data-field': 'digest' }, a.digest)),
        el('dt', {}, 'Parked'), el('dd', {}, a.created_at),
        el('dt', {}, 'Refused unless decided by'), el('dd', {}, a.expires_at)),
      el('div', { class: 'actions' }, approve), lasting, deny)
    approve.addEventListener('click', () => void decide(a, 'approve', {}, () => `Approved ${what}.`))
    lasting.addEventListener('submit', (event) => {
      event.preventDefault()
      const minutes = Number(formValue(lasting, 'minutes'))
      void decide(a, 'approve', { remember_minutes: minutes }, (d) => `Approved ${what}; identical requests of session ${d.session} pass until ${d.remember_until}.`)
    })
    deny.addEventListener('submit', (event) => {
      event.preventDefault()
      void decide(a, 'deny', { reason: formValue(deny, 'reason') }, () => `Denied ${what}.`)
    })
    return card
  }

  /**
   * @param {any} a
   * @param {'approve' | 'deny'} verb
   * @param {object} body
   * @param {(decided: any) => string} done what to say once decided
   */
  async function decide(a, verb, body, done) {
    try {
      const decided = await api('POST', `/v1/approvals/${encodeURIComponent(a.id)}/${verb}`, body)
      ctx.say(done(decided))
      const card = cards.get(a.id)
      if (card !== undefined) drop(a.id, card)
    } catch (err) {
      ctx.fail(err)
      // 409: decided elsewhere, expired or withdrawn meanwhile: it waits no more.
      const card = cards.get(a.id)
      if (err instanceof ApiError && err.status === 409 && card !== undefined) drop(a.id, card)
    }
  }

  async function follow() {
    let first = true
    while (!stop.signal.aborted) {
      try {
        const body = await api('GET', withQuery('/v1/approvals', first ? {} : { wait: WAIT_S, after: newest }), undefined, stop.signal)
        first = false
        show(body.approvals)
      } catch (err) {
        if (stop.signal.aborted) return
        ctx.fail(err)
        if (err instanceof ApiError && (err.status === 401 || err.status === 403)) return
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS))
      }
    }
  }

  void follow()
  return () => stop.abort()
}

/**
 * The oldest pending requests for the overview: how many, and a line for each of the first five.
 * @param {any[]} approvals
 */
export function pendingSummary(approvals) {
  const pending = approvals.filter((a) => a.state === 'pending')
  return [
    el('p', {}, el('span', { 'data-testid': 'pending-approvals' }, String(pending.length)), ' waiting for a decision'),
    pending.length === 0 ? null : el('ul', { class: 'checks' }, pending.slice(0, 5).map((a) => el('li', {}, el('code', {}, `${a.method} ${a.host}${a.path}`), ` by ${a.agent}, since ${a.created_at}`))),
  ]
}

