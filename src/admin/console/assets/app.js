// @ts-check
/**
 * The console's shell: the login form, the navigation the caller's role allows, and a router from
 * the location's fragment (#sessions) to a page (page.js).
 *
 * The role only decides what the console offers; the admin API enforces it on every call anyway.
 */
import { api, ApiError, setToken } from './api.js'
import { el, field, formValue, replace } from './dom.js'
import { approvalsPage } from './pages/approvals.js'
import { auditPage } from './pages/audit.js'
import { budgetsPage } from './pages/budgets.js'
import { connectorsPage } from './pages/connectors.js'
import { overviewPage } from './pages/overview.js'
import { secretsPage } from './pages/secrets.js'
import { sessionsPage } from './pages/sessions.js'

/**
 * @typedef {import('./page.js').Me} Me
 * @typedef {import('./page.js').Page} Page
 */

/**
 * The pages, the roles they are offered to, and the route (`METHOD /path`) each needs: a page
 * whose route this keyvalet does not declare in /v1/openapi.json is not offered.
 * @type {{ id: string, title: string, roles: Me['role'][], needs: string, page: Page }[]}
 */
const PAGES = [
  { id: 'overview', title: 'Overview', roles: ['admin', 'operator', 'auditor', 'approver'], needs: 'GET /readyz', page: overviewPage },
  { id: 'approvals', title: 'Approvals', roles: ['admin', 'operator', 'approver'], needs: 'GET /v1/approvals', page: approvalsPage },
  { id: 'sessions', title: 'Sessions', roles: ['admin', 'operator'], needs: 'GET /v1/sessions', page: sessionsPage },
  { id: 'budgets', title: 'Budgets', roles: ['admin', 'operator'], needs: 'GET /v1/sessions', page: budgetsPage },
  { id: 'audit', title: 'Audit', roles: ['admin', 'auditor'], needs: 'GET /v1/audit', page: auditPage },
  { id: 'connectors', title: 'Connectors and rules', roles: ['admin', 'operator', 'auditor'], needs: 'GET /v1/config', page: connectorsPage },
  { id: 'secrets', title: 'Secrets', roles: ['admin'], needs: 'PUT /v1/secrets/{name}', page: secretsPage },
]

const main = /** @type {HTMLElement} */ (document.getElementById('main'))
const nav = /** @type {HTMLElement} */ (document.getElementById('nav'))
const who = /** @type {HTMLElement} */ (document.getElementById('who'))
const logout = /** @type {HTMLButtonElement} */ (document.getElementById('logout'))
const status = /** @type {HTMLElement} */ (document.getElementById('status'))

/** @type {Me | undefined} */
let me
/** Every `METHOD /path` the admin API declares. @type {Set<string>} */
let routes = new Set()
/** @param {string} route */
const has = (route) => routes.has(route)
/** @type {void | (() => void)} */
let stopPage

/** @param {string} text */
function say(text) {
  status.classList.remove('error')
  status.textContent = text
}

/** @param {unknown} err */
function fail(err) {
  status.classList.add('error')
  status.textContent = err instanceof ApiError ? `${err.message} (${err.code})` : 'The admin API could not be reached.'
  if (err instanceof ApiError && err.status === 401) signOut('Your admin token is no longer accepted: log in again.')
}

/** @param {string} [message] */
function signOut(message) {
  setToken(undefined)
  me = undefined
  if (typeof stopPage === 'function') stopPage()
  stopPage = undefined
  nav.hidden = true
  logout.hidden = true
  replace(who)
  showLogin(message)
}

/** @param {string} [message] */
function showLogin(message) {
  const form = el('form', { class: 'card login', 'aria-labelledby': 'login-title' },
    el('h1', { id: 'login-title' }, 'Log in'),
    el('p', {}, 'Paste an admin token (kva_…). It stays in this page\'s memory only: reloading or closing the tab logs you out.'),
    field('Admin token', { name: 'token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' }),
    el('button', { type: 'submit' }, 'Log in'),
  )
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    void logIn(formValue(form, 'token'))
  })
  replace(main, form)
  if (message !== undefined) {
    status.classList.add('error')
    status.textContent = message
  }
  form.querySelector('input')?.focus()
}

/** @param {string} value */
async function logIn(value) {
  setToken(value)
  try {
    me = await api('GET', '/v1/whoami')
    const { paths } = await api('GET', '/v1/openapi.json')
    routes = new Set(Object.entries(paths).flatMap(([path, methods]) => Object.keys(/** @type {object} */ (methods)).map((m) => `${m.toUpperCase()} ${path}`)))
  } catch (err) {
    me = undefined
    setToken(undefined)
    status.classList.add('error')
    status.textContent = err instanceof ApiError ? `Login refused: ${err.message} (${err.code})` : 'The admin API could not be reached.'
    return
  }
  say('')
  const current = /** @type {Me} */ (me)
  replace(who, `${current.name} (${current.role})`)
  logout.hidden = false
  replace(nav, offered(current).map((p) => el('a', { href: `#${p.id}`, 'data-page': p.id }, p.title)))
  nav.hidden = false
  route()
}

function route() {
  if (me === undefined) return
  const current = me
  const allowed = offered(current)
  const wanted = location.hash.slice(1)
  const page = allowed.find((p) => p.id === wanted) ?? allowed[0]
  if (page === undefined) return
  if (typeof stopPage === 'function') stopPage()
  for (const link of nav.querySelectorAll('a')) {
    if (link.dataset.page === page.id) link.setAttribute('aria-current', 'page')
    else link.removeAttribute('aria-current')
  }
  document.title = `${page.title} · keyvalet console`
  say('')
  replace(main, el('h1', {}, page.title))
  stopPage = page.page(main, { me: current, has, say, fail })
}

/** The pages this role is offered on this keyvalet. @param {Me} who */
function offered(who) {
  return PAGES.filter((p) => p.roles.includes(who.role) && has(p.needs))
}

window.addEventListener('hashchange', () => {
  route()
  main.focus()
})
logout.addEventListener('click', () => signOut())
// The skip link moves focus to the page without touching the fragment, which names the page shown.
document.querySelector('a.skip')?.addEventListener('click', (event) => {
  event.preventDefault()
  main.focus()
})
showLogin()
