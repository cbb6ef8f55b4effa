// @ts-check
/**
 * The console's shell: the login form, the navigation the caller's role allows, and a router from
 * the location's fragment (#sessions) to a page. A page is `(main, ctx) => stop?`: it fills `main`
 * and may return a function that stops its timers when another page is shown.
 *
 * The role only decides what the console offers; the admin API enforces it on every call anyway.
 */
import { api, ApiError, setToken } from './api.js'
import { el, field, formValue, replace } from './dom.js'
import { overviewPage } from './pages/overview.js'
import { secretsPage } from './pages/secrets.js'
import { sessionsPage } from './pages/sessions.js'

/**
 * @typedef {{ id: string, name: string, role: 'admin' | 'operator' | 'auditor' }} Me
 * @typedef {{ me: Me, say: (text: string) => void, fail: (err: unknown) => void }} Ctx
 * @typedef {(main: HTMLElement, ctx: Ctx) => (void | (() => void))} Page
 */

/** @type {{ id: string, title: string, roles: Me['role'][], page: Page }[]} */
const PAGES = [
  { id: 'overview', title: 'Overview', roles: ['admin', 'operator', 'auditor'], page: overviewPage },
  { id: 'sessions', title: 'Sessions', roles: ['admin', 'operator'], page: sessionsPage },
  { id: 'secrets', title: 'Secrets', roles: ['admin'], page: secretsPage },
]

const main = /** @type {HTMLElement} */ (document.getElementById('main'))
const nav = /** @type {HTMLElement} */ (document.getElementById('nav'))
const who = /** @type {HTMLElement} */ (document.getElementById('who'))
const logout = /** @type {HTMLButtonElement} */ (document.getElementById('logout'))
const status = /** @type {HTMLElement} */ (document.getElementById('status'))

/** @type {Me | undefined} */
let me
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
  } catch (err) {
    setToken(undefined)
    status.classList.add('error')
    status.textContent = err instanceof ApiError ? `Login refused: ${err.message} (${err.code})` : 'The admin API could not be reached.'
    return
  }
  say('')
  const current = /** @type {Me} */ (me)
  replace(who, `${current.name} (${current.role})`)
  logout.hidden = false
  replace(nav, PAGES.filter((p) => p.roles.includes(current.role)).map((p) => el('a', { href: `#${p.id}`, 'data-page': p.id }, p.title)))
  nav.hidden = false
  route()
}

function route() {
  if (me === undefined) return
  const current = me
  const allowed = PAGES.filter((p) => p.roles.includes(current.role))
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
  stopPage = page.page(main, { me: current, say, fail })
}

window.addEventListener('hashchange', () => {
  route()
  main.focus()
})
logout.addEventListener('click', () => signOut())
showLogin()
