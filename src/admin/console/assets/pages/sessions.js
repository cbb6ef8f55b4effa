// @ts-check
/**
 * Sessions: list with filters (a page at a time), revoke the selected ones or every live one
 * matching the filter, and create one with a grant picker built from the configured connectors
 * and the severities of their rules (GET /v1/config; a free grant field covers rule-level grants
 * and roles or versions without it). A new key is shown once, with copy buttons, until dismissed.
 */
import { api, withQuery } from '../api.js'
import { el, field, formValue, replace, table } from '../dom.js'

const FILTERS = ['agent', 'user', 'workspace', 'task']

/** @type {import('../page.js').Page} */
export function sessionsPage(main, ctx) {
  const created = el('section', { class: 'created', tabindex: '-1', 'aria-live': 'polite', 'data-testid': 'created' })
  const results = el('div', {})
  const picker = el('fieldset', { class: 'grants' }, el('legend', {}, 'Grants'))
  const createForm = el('form', { class: 'card', 'aria-labelledby': 'ses-new' },
    el('h2', { id: 'ses-new' }, 'New session'),
    field('Agent', { name: 'agent', required: true, autocomplete: 'off' }),
    field('User', { name: 'user', required: true, autocomplete: 'off' }),
    field('Workspace', { name: 'workspace', required: true, autocomplete: 'off' }),
    field('Task (optional)', { name: 'task', autocomplete: 'off' }),
    field('Lifetime', { name: 'ttl', value: '1h', required: true, pattern: '[0-9]+[smhd]', title: 'A whole number and a unit: 90s, 30m, 1h, 2d' }),
    picker,
    field('Other grants (connector:severity[:rule,…], space-separated)', { name: 'extra', autocomplete: 'off', spellcheck: 'false' }),
    el('button', { type: 'submit' }, 'Create session'))
  const filterForm = el('form', { class: 'card filters', role: 'search', 'aria-labelledby': 'ses-find' },
    el('h2', { id: 'ses-find' }, 'Find sessions'),
    FILTERS.map((name) => field(name[0]?.toUpperCase() + name.slice(1), { name, autocomplete: 'off' })),
    el('div', { class: 'actions' },
      el('button', { type: 'submit' }, 'Filter'),
      el('button', { type: 'button', onclick: () => void revokeMatching() }, 'Revoke all live sessions matching the filter')))
  main.append(created, el('div', { class: 'grid' }, filterForm, createForm), results)

  /** @type {Record<string, string>} */
  let filter = {}
  /** @type {Set<string>} */
  const selected = new Set()

  const currentFilter = () => Object.fromEntries(FILTERS.map((name) => [name, formValue(filterForm, name)]).filter(([, v]) => v !== ''))

  /** @param {string | undefined} cursor */
  async function list(cursor) {
    try {
      const page = await api('GET', withQuery('/v1/sessions', { ...filter, limit: 50, cursor }))
      if (cursor === undefined) selected.clear()
      const rows = page.sessions.map((/** @type {any} */ s) => [
        s.state === 'active' ? el('input', { type: 'checkbox', 'aria-label': `Select session ${s.id}`, onchange: (/** @type {Event} */ e) => {
          if (/** @type {HTMLInputElement} */ (e.target).checked) selected.add(s.id)
          else selected.delete(s.id)
        } }) : '',
        el('code', {}, s.id), s.state, s.agent, s.user, s.workspace, s.task, s.grants.join(' '), s.expires_at,
        s.state === 'active' ? el('button', { type: 'button', 'aria-label': `Revoke session ${s.id}`, onclick: () => void revoke([s.id]) }, 'Revoke') : '',
      ])
      const shown = table('Sessions, oldest first', ['Select', 'Id', 'State', 'Agent', 'User', 'Workspace', 'Task', 'Grants', 'Expires', 'Action'], rows)
      const more = page.next_cursor === null ? null : el('button', { type: 'button', onclick: () => void list(page.next_cursor) }, 'Next page')
      replace(results, el('div', { class: 'actions' }, el('button', { type: 'button', onclick: () => void revoke([...selected]) }, 'Revoke selected')), shown, more)
    } catch (err) {
      ctx.fail(err)
    }
  }

  /** @param {string[]} ids */
  async function revoke(ids) {
    if (ids.length === 0) return ctx.say('Select the sessions to revoke first.')
    try {
      for (const id of ids) await api('POST', `/v1/sessions/${encodeURIComponent(id)}/revoke`)
      ctx.say(`Revoked ${ids.length} session${ids.length === 1 ? '' : 's'}.`)
      await list(undefined)
    } catch (err) {
      ctx.fail(err)
    }
  }

  async function revokeMatching() {
    const wanted = currentFilter()
    if (Object.keys(wanted).length === 0) return ctx.say('Fill in at least one filter field to revoke by filter.')
    try {
      const { revoked } = await api('POST', '/v1/sessions/revoke', wanted)
      ctx.say(`Revoked ${revoked.length} session${revoked.length === 1 ? '' : 's'}.`)
      filter = wanted
      await list(undefined)
    } catch (err) {
      ctx.fail(err)
    }
  }

  filterForm.addEventListener('submit', (event) => {
    event.preventDefault()
    filter = currentFilter()
    void list(undefined)
  })

  createForm.addEventListener('submit', (event) => {
    event.preventDefault()
    const picked = [...picker.querySelectorAll('input:checked')].map((box) => /** @type {HTMLInputElement} */ (box).value)
    const grant = [...picked, ...formValue(createForm, 'extra').split(/\s+/).filter((g) => g !== '')]
    const body = { agent: formValue(createForm, 'agent'), user: formValue(createForm, 'user'), workspace: formValue(createForm, 'workspace'), ttl: formValue(createForm, 'ttl'), grant, ...(formValue(createForm, 'task') === '' ? {} : { task: formValue(createForm, 'task') }) }
    api('POST', '/v1/sessions', body).then((answer) => {
      showKey(created, answer, ctx)
      createForm.reset()
      void list(undefined)
    }, ctx.fail)
  })

  void grantChoices().then((choices) => {
    if (choices.length === 0) picker.append(el('p', {}, 'The configured connectors are not available to this token: name the grants below.'))
    else picker.append(...choices.map((g) => el('label', { class: 'check' }, el('input', { type: 'checkbox', name: 'grant', value: g }), g)))
  })
  void list(undefined)
}

/**
 * connector:severity for every severity a connector's rules use, from GET /v1/config (empty when
 * the route is missing or refused).
 * @returns {Promise<string[]>}
 */
async function grantChoices() {
  try {
    const { config } = await api('GET', '/v1/config')
    /** @type {string[]} */
    const choices = []
    for (const [name, connector] of Object.entries(config.connectors ?? {})) {
      const severities = new Set((/** @type {any} */ (connector).rules ?? []).map((/** @type {any} */ r) => r.severity).filter((/** @type {unknown} */ s) => typeof s === 'string'))
      for (const severity of [...severities].sort()) choices.push(`${name}:${severity}`)
    }
    return choices
  } catch {
    return []
  }
}

/**
 * The key, once, with the sandbox's environment as shell lines; dismissing removes it from the page.
 * @param {HTMLElement} where
 * @param {{ session: any, key: string, env: ({ name: string, value: string } | { comment: string })[] }} answer
 * @param {import('../page.js').Ctx} ctx
 */
function showKey(where, answer, ctx) {
  const lines = answer.env.map((l) => ('comment' in l ? `# ${l.comment}` : `export ${l.name}=${shellQuote(l.value)}`)).join('\n')
  /** @param {string} text @param {string} what */
  const copy = (text, what) => navigator.clipboard.writeText(text).then(() => ctx.say(`${what} copied.`), () => ctx.say(`${what} could not be copied: select it and copy it by hand.`))
  replace(where,
    el('h2', {}, `Session ${answer.session.id} created`),
    el('p', {}, 'The task key is shown this once: keyvalet keeps only its hash. Give the sandbox these lines, then dismiss this panel.'),
    el('p', {}, 'Task key: ', el('code', { 'data-testid': 'task-key' }, answer.key)),
    el('pre', { 'data-testid': 'env-lines', tabindex: '0', 'aria-label': 'Sandbox environment' }, lines),
    el('div', { class: 'actions' },
      el('button', { type: 'button', onclick: () => void copy(lines, 'Environment lines') }, 'Copy environment lines'),
      el('button', { type: 'button', onclick: () => void copy(answer.key, 'Task key') }, 'Copy task key'),
      el('button', { type: 'button', onclick: () => replace(where) }, 'Dismiss')))
  where.focus()
}

/** As `keyvalet session create --env` quotes a value. @param {string} value */
function shellQuote(value) {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`
}
