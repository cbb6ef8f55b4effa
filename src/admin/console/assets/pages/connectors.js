// @ts-check
/**
 * Connectors and rules (every role): the configuration in force, read-only (GET /v1/config: it
 * names vault secrets, never holds a value), and, for the roles that may explain, "try a request":
 * what the configuration decides for one request under a grant, and by which rule, without
 * sending anything (POST /v1/explain).
 */
import { api } from '../api.js'
import { append, el, field, formValue, replace, table } from '../dom.js'

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']

/** @type {import('../page.js').Page} */
export function connectorsPage(main, ctx) {
  const about = el('p', {})
  const listing = el('div', {})
  const answer = el('section', { class: 'created', tabindex: '-1', 'aria-live': 'polite', 'data-testid': 'explained' })
  const mayExplain = ctx.me.role === 'admin' || ctx.me.role === 'operator'
  const tryForm = el('form', { class: 'card', 'aria-labelledby': 'con-try' },
    el('h2', { id: 'con-try' }, 'Try a request'),
    el('p', {}, 'Decided by the configuration in force; nothing is sent and no credential is read.'),
    field('Grants (connector:severity[:rule,…], space-separated)', { name: 'grant', required: true, autocomplete: 'off', spellcheck: 'false' }),
    el('label', { class: 'field' }, el('span', {}, 'Method'), el('select', { name: 'method' }, METHODS.map((m) => el('option', { value: m }, m)))),
    field('URL (a gateway path like /github/repos/acme/app, or an absolute URL)', { name: 'url', required: true, autocomplete: 'off', spellcheck: 'false' }),
    el('label', { class: 'field' }, el('span', {}, 'Headers (one "Name: value" a line)'), el('textarea', { name: 'headers', rows: 2, spellcheck: 'false' })),
    el('label', { class: 'field' }, el('span', {}, 'Body'), el('textarea', { name: 'body', rows: 3, spellcheck: 'false' })),
    el('button', { type: 'submit' }, 'Explain'))
  append(main, [about, mayExplain && el('div', { class: 'grid' }, tryForm), answer, listing])

  tryForm.addEventListener('submit', (event) => {
    event.preventDefault()
    /** @type {Record<string, string>} */
    const headers = {}
    for (const line of formValue(tryForm, 'headers').split('\n')) {
      const colon = line.indexOf(':')
      if (colon > 0) headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim()
    }
    const body = /** @type {HTMLTextAreaElement} */ (tryForm.elements.namedItem('body')).value
    api('POST', '/v1/explain', {
      grant: formValue(tryForm, 'grant').split(/\s+/).filter((g) => g !== ''), method: formValue(tryForm, 'method'), url: formValue(tryForm, 'url'),
      ...(Object.keys(headers).length === 0 ? {} : { headers }), ...(body === '' ? {} : { body }),
    }).then((r) => {
      replace(answer, el('h2', {}, r.decision === 'allow' ? 'Allowed' : 'Refused'),
        el('dl', { class: 'facts' },
          ['decision', 'reason', 'rule', 'detail', 'connector', 'path', 'config_version'].flatMap((name) => [el('dt', {}, name), el('dd', { 'data-field': name }, String(r[name] ?? '—'))])))
      answer.focus()
    }, ctx.fail)
  })

  api('GET', '/v1/config').then(({ version, file, config }) => {
    replace(about, `Configuration ${version}, read from ${file}.`)
    const connectors = Object.entries(config.connectors ?? {})
    replace(listing, connectors.map(([name, c]) => {
      const connector = /** @type {any} */ (c)
      return el('section', { class: 'card wide', 'aria-label': `Connector ${name}` },
        el('h2', {}, name),
        el('dl', { class: 'facts' },
          el('dt', {}, 'Upstream'), el('dd', {}, String(connector.upstream ?? '—')),
          el('dt', {}, 'Credential'), el('dd', {}, credentialOf(connector.credential))),
        table(`Rules of ${name}`, ['Id', 'Methods', 'Path', 'Severity'], (connector.rules ?? []).map((/** @type {any} */ r) => [
          el('code', {}, String(r.id ?? '')), (r.methods ?? []).join(' '), el('code', {}, String(r.path ?? '')), String(r.severity ?? ''),
        ])),
        el('details', {}, el('summary', {}, 'Everything, as configured'), el('pre', {}, JSON.stringify(connector, null, 2))))
    }))
  }, ctx.fail)
}

/** @param {any} credential */
function credentialOf(credential) {
  if (credential === undefined || credential === null) return 'none'
  if (typeof credential.secret === 'string') return `vault secret ${credential.secret}${credential.inject === undefined ? '' : ` (${JSON.stringify(credential.inject)})`}`
  return Object.keys(credential).join(', ')
}
