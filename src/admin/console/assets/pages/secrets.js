// @ts-check
/**
 * Secrets (admin role): names and metadata, set or replace a value, delete. Write-only: the admin
 * API never returns a value, and the form's value field is cleared once the value is stored.
 */
import { api } from '../api.js'
import { el, field, formValue, replace, table } from '../dom.js'

/** @type {import('../page.js').Page} */
export function secretsPage(main, ctx) {
  const listing = el('div', {})
  const form = el('form', { class: 'card', 'aria-labelledby': 'sec-set' },
    el('h2', { id: 'sec-set' }, 'Set or replace a secret'),
    field('Name', { name: 'name', required: true, autocomplete: 'off', spellcheck: 'false', pattern: '[a-z0-9._\\-]{1,63}', title: 'a-z, 0-9, ".", "_", "-"' }),
    el('label', { class: 'field' }, el('span', {}, 'Value (write-only: never shown again)'),
      el('textarea', { name: 'value', required: true, autocomplete: 'off', spellcheck: 'false', rows: 3 })),
    el('button', { type: 'submit' }, 'Store'))
  main.append(el('div', { class: 'grid' }, form), listing)

  async function list() {
    try {
      const { secrets } = await api('GET', '/v1/secrets')
      replace(listing, table('Stored secrets (metadata only)', ['Name', 'Master key', 'Created', 'Updated', 'Action'], secrets.map((/** @type {any} */ s) => [
        el('code', {}, s.name), s.key_id, s.created_at, s.updated_at,
        el('button', { type: 'button', 'aria-label': `Delete secret ${s.name}`, onclick: () => void remove(s.name) }, 'Delete'),
      ])))
    } catch (err) {
      ctx.fail(err)
    }
  }

  /** @param {string} name */
  async function remove(name) {
    try {
      await api('DELETE', `/v1/secrets/${encodeURIComponent(name)}`)
      ctx.say(`Deleted ${name}.`)
      await list()
    } catch (err) {
      ctx.fail(err)
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault()
    const name = formValue(form, 'name')
    const value = /** @type {HTMLTextAreaElement} */ (form.elements.namedItem('value')).value
    api('PUT', `/v1/secrets/${encodeURIComponent(name)}`, { value }).then(() => {
      form.reset()
      ctx.say(`Stored ${name}.`)
      void list()
    }, ctx.fail)
  })
  void list()
}
