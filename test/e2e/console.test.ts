import assert from 'node:assert/strict'
import { get as httpGet } from 'node:http'
import { connect } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { Page } from 'playwright-core'
import { CONSOLE_CSP } from '../../src/admin/console/static.ts'
import { KeyvaletMetrics } from '../../src/metrics/keyvalet-metrics.ts'
import { parseGrant } from '../../src/policy/grant.ts'
import { receivedDigest } from '../helpers/approvals.ts'
import { eventually } from '../helpers/eventually.ts'
import { SCREENSHOTS, startBrowser, type TestBrowser } from '../helpers/browser.ts'
import { startKeyvalet, type TestKeyvalet } from '../helpers/keyvalet.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const SECRET = 'ghp_consoleSecretValue0123456789abcdef'
/** Sandbox-chosen names that would run script if the console ever parsed them as markup. */
const XSS_AGENT = '<img/src=x/onerror=window.__pwned=1>'
const XSS_TASK = '<script>window.__pwned=2</script>'

function config(upstream: Upstream): string {
  return `version: 1
listen: { gateway: "127.0.0.1:0", admin: "127.0.0.1:0" }
budgets:
  issue-reads: { per: agent, connector: github, rule: read-issues, window: 1h, requests: 50 }
connectors:
  github:
    upstream: ${upstream.url}/api
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: github-token, inject: bearer }
    rules:
      - { id: read-issues, methods: [GET], path: /repos/acme/app/issues/**, severity: read }
      - { id: open-issue, methods: [POST], path: /repos/acme/app/issues, severity: write, approval: { timeout: 60s, summary: "Open issue {title}" } }
`
}

async function logIn(page: Page, adminUrl: string, token: string): Promise<void> {
  await page.goto(`${adminUrl}/console`)
  await page.getByLabel('Admin token').fill(token)
  await page.getByRole('button', { name: 'Log in' }).click()
}

/** No script of the sandbox ran (the flag its payloads set is unset) and the page met no CSP violation. */
async function assertInert(page: Page & { errors: string[] }): Promise<void> {
  assert.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined, 'a payload ran')
  assert.deepEqual(await page.evaluate(() => (window as unknown as { __csp: string[] }).__csp), [])
  assert.deepEqual(page.errors.filter((e) => !e.startsWith('Failed to load resource')), [])
}

/** One HTTP/1.1 exchange on a raw connection, as written; resolves with everything read until the server closes. */
function raw(base: string, request: string): Promise<string> {
  const { hostname, port } = new URL(base)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    let text = ''
    socket.on('data', (c: Buffer) => { text += c.toString() })
    socket.on('close', () => resolve(text))
    socket.on('error', reject)
    socket.write(request)
  })
}

/**
 * What a screen reader or keyboard user would miss on the page as shown, as axe's rules of the
 * same names check it: a control without a label, a button or link without a name, an
 * aria-labelledby naming no element, a table without a caption or with an empty column heading, a
 * chart that is neither a named image nor hidden, a repeated id.
 */
function a11yProblems(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const problems: string[] = []
    const shown = (e: Element) => {
      const box = e.getBoundingClientRect()
      return box.width > 0 && box.height > 0 && getComputedStyle(e).visibility !== 'hidden'
    }
    const text = (e: Element | null) => (e?.textContent ?? '').replace(/\s+/g, ' ').trim()
    const name = (e: Element): string => {
      const labelledBy = e.getAttribute('aria-labelledby')
      if (labelledBy !== null) return labelledBy.split(/\s+/).map((id) => text(document.getElementById(id))).join(' ').trim()
      const label = e.getAttribute('aria-label')
      if (label !== null) return label.trim()
      const labels = (e as HTMLInputElement).labels
      if (labels !== undefined && labels !== null && labels.length > 0) return [...labels].map(text).join(' ')
      return text(e) || (e.getAttribute('title') ?? '').trim()
    }
    const what = (e: Element) => e.outerHTML.slice(0, 100)
    for (const e of document.querySelectorAll('input:not([type="hidden"]), select, textarea')) if (shown(e) && name(e) === '') problems.push(`unlabelled control ${what(e)}`)
    for (const e of document.querySelectorAll('button, a[href], summary, [tabindex]:not([tabindex="-1"])')) if (shown(e) && name(e) === '') problems.push(`nameless ${what(e)}`)
    for (const e of document.querySelectorAll('[aria-labelledby]')) {
      for (const id of (e.getAttribute('aria-labelledby') ?? '').split(/\s+/)) if (document.getElementById(id) === null) problems.push(`aria-labelledby names no element: ${id}`)
    }
    for (const t of document.querySelectorAll('table')) {
      if (text(t.querySelector('caption')) === '') problems.push(`table without a caption ${what(t)}`)
      for (const th of t.querySelectorAll('th')) if (text(th) === '') problems.push(`empty column heading in "${text(t.querySelector('caption'))}"`)
    }
    for (const svg of document.querySelectorAll('svg')) {
      if (svg.parentElement?.closest('svg') !== null && svg.parentElement?.closest('svg') !== undefined) continue
      const image = svg.getAttribute('role') === 'img' && (svg.getAttribute('aria-label') ?? '') !== ''
      if (!image && svg.getAttribute('aria-hidden') !== 'true') problems.push(`svg neither a named image nor hidden ${what(svg)}`)
    }
    const ids = [...document.querySelectorAll('[id]')].map((e) => e.id)
    for (const id of new Set(ids.filter((id, i) => ids.indexOf(id) !== i))) problems.push(`id used twice: ${id}`)
    return problems
  })
}

/** Where a keyboard user starts: on the page's first control, the skip link. */
async function fromTheTop(page: Page): Promise<void> {
  await page.evaluate(() => {
    window.scrollTo(0, 0)
    document.querySelector<HTMLElement>('a.skip')?.focus()
  })
}

/**
 * Tabs through the whole page from the top (bounded): every focusable control shown must be
 * reached, each with a visible focus outline. Returns what it reached and what went wrong.
 */
async function tabThrough(page: Page): Promise<{ reached: number; missed: string[]; problems: string[] }> {
  await page.evaluate(() => {
    for (const e of document.querySelectorAll('[data-tabbed], [data-tab-last]')) {
      e.removeAttribute('data-tabbed')
      e.removeAttribute('data-tab-last')
    }
  })
  await fromTheTop(page)
  const problems: string[] = []
  let reached = 0
  for (let i = 0; i < 400; i++) {
    if (i > 0) await page.keyboard.press('Tab')
    const step = await page.evaluate(() => {
      const e = document.activeElement
      if (e === null || e === document.body) return { done: true, again: false, same: false, outline: true, what: '' }
      // A date and time field takes several Tabs (one per part): the same element again is no cycle.
      const previous = document.querySelector('[data-tab-last]')
      previous?.removeAttribute('data-tab-last')
      e.setAttribute('data-tab-last', '')
      const same = previous === e
      const again = e.hasAttribute('data-tabbed') && !same
      e.setAttribute('data-tabbed', '')
      const style = getComputedStyle(e)
      return { done: false, again, same, outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2, what: e.outerHTML.slice(0, 100) }
    })
    if (step.done || step.again) break
    if (step.same) continue
    reached++
    if (!step.outline) problems.push(`no visible focus on ${step.what}`)
  }
  // Every control shown was reached (Chromium also stops on a scrolled table, which is fine).
  const missed = await page.evaluate(() => [...document.querySelectorAll('a[href], button:not([disabled]), input:not([type="hidden"]):not([disabled]), select, textarea, summary, [tabindex]:not([tabindex="-1"])')]
    .filter((e) => { const box = e.getBoundingClientRect(); return box.width > 0 && box.height > 0 && !e.hasAttribute('data-tabbed') }).map((e) => e.outerHTML.slice(0, 100)))
  return { reached, missed, problems }
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true })

describe('web console in real Chromium', () => {
  let upstream: Upstream
  let kv: TestKeyvalet
  let browser: TestBrowser
  let metrics: KeyvaletMetrics
  before(async () => {
    upstream = await startUpstream()
    metrics = new KeyvaletMetrics()
    kv = await startKeyvalet(config(upstream), { admin: {}, metrics })
    await kv.setSecret('github-token', SECRET)
    browser = await startBrowser()
  })
  after(async () => {
    await browser?.close()
    await kv?.close()
    await upstream?.close()
  })

  it('is served with a strict CSP, no framing, and only its own files', async () => {
    const res = await fetch(`${kv.adminUrl}/console`)
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('content-security-policy'), CONSOLE_CSP)
    assert.match(CONSOLE_CSP, /script-src 'self';/)
    assert.match(CONSOLE_CSP, /frame-ancestors 'none'/)
    assert.match(CONSOLE_CSP, /require-trusted-types-for 'script'/)
    assert.equal(res.headers.get('x-frame-options'), 'DENY')
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff')
    assert.doesNotMatch(await res.text(), /<script>|<style>|\sstyle=|\son[a-z]+=|https?:\/\//i)
    for (const path of ['/console/static.ts', '/console/assets/app.js', '/console/nothing.js', '/console/pages']) {
      assert.equal((await fetch(`${kv.adminUrl}${path}`)).status, 404, path)
    }
    // Sent as written (fetch would resolve the dots): nothing outside the console's files is served.
    for (const path of ['/console/../server.ts', '/console/%2e%2e/static.ts', '/console/..%2fstatic.ts', '/console/pages/../../static.ts']) {
      const status = await new Promise<number>((resolve, reject) => httpGet(`${kv.adminUrl}${path}`, (res) => { res.resume(); resolve(res.statusCode ?? 0) }).on('error', reject))
      assert.ok(status === 404 || status === 401, `${path}: ${status}`)
    }
    assert.equal((await fetch(`${kv.adminUrl}/console/app.js`, { method: 'POST' })).status, 405)

    // Trusted Types with no policy: even a string of markup handed to innerHTML is refused by the browser.
    const page = await browser.page()
    await page.goto(`${kv.adminUrl}/console`)
    await page.getByLabel('Admin token').waitFor()
    const refused = await page.evaluate(() => {
      try {
        document.body.innerHTML = '<img src=x onerror="window.__pwned=3">'
        return 'parsed'
      } catch (err) {
        return (err as Error).name
      }
    })
    assert.equal(refused, 'TypeError')
    assert.equal(await page.locator('img').count(), 0)
    assert.deepEqual(await page.evaluate(() => (window as unknown as { __csp: string[] }).__csp), ['require-trusted-types-for trusted-types-sink'])
    await page.close()
  })

  it('refuses a wrong token at login and offers nothing', async () => {
    const page = await browser.page()
    await logIn(page, kv.adminUrl as string, 'kva_thisIsNotAToken000000000000000000000000')
    await page.getByText(/Login refused: .*\(admin_token_invalid\)/).waitFor()
    assert.equal(await page.locator('#nav').isHidden(), true)
    await shot(page, 'login-refused')
    await assertInert(page)
    await page.close()
  })

  it('operator: creates a session, its key works through the gateway; revoked from the list, the next request is refused; sandbox-chosen names stay text', async () => {
    const { token, id: tokenId } = await kv.adminToken('operator', { name: 'console-operator' })
    const page = await browser.page()
    await logIn(page, kv.adminUrl as string, token)
    await page.getByText('console-operator (operator)').waitFor()
    assert.deepEqual(await page.locator('#nav a').allTextContents(), ['Overview', 'Approvals', 'Sessions', 'Budgets', 'Connectors and rules'])

    await page.getByRole('link', { name: 'Sessions' }).click()
    const form = page.getByRole('form', { name: 'New session' })
    await form.getByLabel('Agent').fill(XSS_AGENT)
    await form.getByLabel('User').fill('alice')
    await form.getByLabel('Workspace').fill('acme')
    await form.getByLabel('Task (optional)').fill(XSS_TASK)
    // The grant picker offers each configured connector at each severity its rules use.
    assert.deepEqual(await form.getByRole('group', { name: 'Grants' }).getByRole('checkbox').evaluateAll((boxes) => boxes.map((b) => (b as HTMLInputElement).value)), ['github:read', 'github:write'])
    await form.getByRole('checkbox', { name: 'github:read' }).check()
    await form.getByRole('button', { name: 'Create session' }).click()
    const key = (await page.getByTestId('task-key').textContent()) ?? ''
    assert.match(key, /^kvt_/)
    assert.match((await page.getByTestId('env-lines').textContent()) ?? '', new RegExp(`^export KEYVALET_TASK_KEY=${key}$`, 'm'))
    await shot(page, 'sessions-created')

    const row = page.getByRole('row').filter({ hasText: XSS_TASK })
    await row.waitFor()
    assert.equal(await row.getByRole('cell').nth(3).textContent(), XSS_AGENT)
    assert.equal(await page.locator('main img, main script').count(), 0)
    const sessionId = ((await row.locator('code').textContent()) ?? '').trim()

    const allowed = await fetch(`${kv.url}/github/repos/acme/app/issues/1`, { headers: { authorization: `Bearer ${key}` } })
    assert.equal(allowed.status, 200)
    assert.equal(JSON.parse(await allowed.text()).url, '/api/repos/acme/app/issues/1')
    assert.equal(upstream.received.at(-1)?.headers.authorization, `Bearer ${SECRET}`)

    await row.getByRole('button', { name: `Revoke session ${sessionId}` }).click()
    await page.getByText('Revoked 1 session.').waitFor()
    const before = upstream.received.length
    const refused = await fetch(`${kv.url}/github/repos/acme/app/issues/2`, { headers: { authorization: `Bearer ${key}` } })
    assert.equal(refused.status, 401)
    assert.equal(JSON.parse(await refused.text()).error.code, 'task_key_revoked')
    assert.equal(upstream.received.length, before)

    const records = await kv.audit()
    const data = records.filter((r) => r.session === sessionId)
    assert.deepEqual(data.map((r) => [r.decision, r.error, r.status]), [['allow', null, 200], ['deny', 'task_key_revoked', 401]])
    const admin = records.filter((r) => r.mode === 'admin' && r.actor?.id === tokenId).map((r) => r.action)
    assert.ok(admin.includes('session.create') && admin.includes('session.revoke'), admin.join(','))
    assert.ok(!JSON.stringify(records).includes(SECRET))

    await page.getByRole('link', { name: 'Overview' }).click()
    await page.getByText('Readiness', { exact: true }).waitFor()
    await page.getByTestId('live-count').waitFor()
    assert.equal(await page.getByRole('heading', { name: 'Requests, last hour' }).count(), 0, 'an operator does not read the audit')
    assert.equal(await page.getByTestId('chain-status').count(), 0)
    await assertInert(page)
    await page.close()
  })

  it('admin: overview with readiness and request counts, secrets set write-only and deleted; screenshots at 1280 and 390 px', async () => {
    const { token } = await kv.adminToken('admin', { name: 'console-admin' })
    const key = (await kv.mintKey(['github:read'], { agent: XSS_AGENT })).key
    await (await fetch(`${kv.url}/github/repos/acme/app/issues/3`, { headers: { authorization: `Bearer ${key}` } })).text()
    await (await fetch(`${kv.url}/github/repos/acme/app/pulls`, { headers: { authorization: `Bearer ${key}` } })).text()
    // The overview's hour ends at keyvalet's clock: bring it to the time the records were written.
    kv.now = Date.now()
    const summary = await (await fetch(`${kv.adminUrl}/v1/audit/summary`, { headers: { authorization: `Bearer ${token}` } })).json() as {
      buckets: { allow: number; would_deny: number; deny: number; error: number }[]; refusals: { code: string; count: number }[]; connectors: { name: string; requests: number }[]
    }
    const total = summary.buckets.reduce((n, b) => n + b.allow + b.would_deny + b.deny + b.error, 0)
    const refusedTotal = summary.buckets.reduce((n, b) => n + b.deny + b.error, 0)
    assert.ok(total >= 2 && refusedTotal >= 1, `${total} ${refusedTotal}`)
    const denied = summary.refusals.find((r) => r.code === 'policy_denied')
    assert.ok(denied !== undefined && denied.count >= 1)
    for (const width of [1280, 390]) {
      const page = await browser.page(width)
      await logIn(page, kv.adminUrl as string, token)
      await page.getByTestId('readiness').waitFor()
      assert.equal(await page.getByTestId('readiness').textContent(), 'Ready')
      // The last hour as the summary counts it: the totals, a column per 5 minutes, refusals by code, the busiest connectors and agents.
      await page.getByTestId('requests-total').waitFor()
      assert.equal(Number(await page.getByTestId('requests-total').textContent()), total)
      assert.equal(Number(await page.getByTestId('refusals-total').textContent()), refusedTotal)
      const chart = page.getByTestId('rate-chart').getByRole('img')
      assert.match((await chart.getAttribute('aria-label')) ?? '', new RegExp(`${total - refusedTotal} allowed, ${refusedTotal} refused$`))
      assert.equal(await chart.locator('g').count(), summary.buckets.length)
      const codes = page.getByRole('table', { name: 'Refused requests per error code' })
      assert.equal(await codes.getByRole('row').filter({ hasText: 'policy_denied' }).getByRole('cell').nth(1).textContent(), String(denied.count))
      const busiest = page.getByRole('table', { name: 'Connectors with the most requests' }).getByRole('row').filter({ hasText: 'github' })
      assert.equal(await busiest.getByRole('cell').nth(1).textContent(), String(summary.connectors.find((c) => c.name === 'github')?.requests))
      await page.getByRole('table', { name: 'Agents with the most requests' }).getByRole('cell', { name: XSS_AGENT, exact: true }).waitFor()
      await page.getByTestId('chain-status').getByText('Intact').waitFor()
      await page.getByRole('cell', { name: XSS_AGENT }).first().waitFor()
      await shot(page, `overview-${width}`)
      // What docs/console-overview.png shows: the window as a person first sees it.
      if (width === 1280) await page.screenshot({ path: join(SCREENSHOTS, 'overview-1280-view.png') })
      assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), `the overview fits ${width} px`)

      await page.getByRole('link', { name: 'Secrets' }).click()
      const form = page.getByRole('form', { name: 'Set or replace a secret' })
      const value = `console-value-${width}-0123456789`
      await form.getByLabel('Name').fill(`console-${width}`)
      await form.getByLabel(/Value/).fill(value)
      await form.getByRole('button', { name: 'Store' }).click()
      await page.getByText(`Stored console-${width}.`).waitFor()
      await page.getByRole('cell', { name: `console-${width}`, exact: true }).waitFor()
      assert.ok(!(await page.content()).includes(value), 'the value left the page')
      assert.equal((await kv.runtime.vault.open(`console-${width}`)).toString(), value)
      await shot(page, `secrets-${width}`)
      await page.getByRole('button', { name: `Delete secret console-${width}` }).click()
      await page.getByText(`Deleted console-${width}.`).waitFor()
      assert.equal(await kv.runtime.vault.openOptional(`console-${width}`), undefined)

      await page.getByRole('link', { name: 'Sessions' }).click()
      await page.getByRole('cell', { name: XSS_AGENT }).first().waitFor()
      await shot(page, `sessions-${width}`)
      await assertInert(page)
      await page.close()
    }
  })

  it('audit explorer: the live tail shows a sandbox request with markup in its path and query as text; a record\'s detail; verify chain; connectors and explain', async () => {
    const { token } = await kv.adminToken('auditor', { name: 'console-auditing' })
    const { key, session } = await kv.mintKey(['github:read'], { agent: XSS_AGENT })
    const page = await browser.page()
    await logIn(page, kv.adminUrl as string, token)
    await page.getByRole('link', { name: 'Audit' }).click()
    await page.getByTestId('records').waitFor()
    await page.getByRole('button', { name: 'Start live tail' }).click()
    await page.getByTestId('tail-state').getByText('following').waitFor()

    // Markup in the path (as clients encode it), in query keys (the audit keeps them decoded) and in a header.
    const target = '/repos/acme/app/issues/%3Cimg%20src=x%20onerror=window.__pwned=4%3E?%3Cimg%20src%3Dx%20onerror%3Dwindow.__pwned%3D5%3E=1&%3Cscript%3Ewindow.__pwned%3D6%3C%2Fscript%3E'
    const before = upstream.received.length
    const answer = await raw(kv.url, `GET /github${target} HTTP/1.1\r\nhost: kv\r\nauthorization: Bearer ${key}\r\nx-note: <svg/onload=window.__pwned=7>\r\nconnection: close\r\n\r\n`)
    assert.match(answer, /^HTTP\/1\.1 200 /)
    assert.equal(upstream.received.length, before + 1)
    assert.equal(upstream.received.at(-1)?.url, `/api${target}`)
    assert.equal(upstream.received.at(-1)?.headers['x-note'], '<svg/onload=window.__pwned=7>')
    const record = (await kv.audit()).filter((r) => r.session === session).at(-1)

    assert.deepEqual([record?.decision, record?.status, record?.rule, record?.path], ['allow', 200, 'read-issues', `/api${target.split('?')[0]}`])
    const keys = ['<img src=x onerror=window.__pwned=5>', '<script>window.__pwned=6</script>']
    assert.deepEqual(record?.query_keys, keys)

    const row = page.getByTestId('tail').getByRole('row').filter({ hasText: String(record?.path) })
    await row.waitFor()
    assert.equal(await row.getByRole('cell').nth(7).textContent(), record?.path)
    assert.equal(await row.getByRole('cell').nth(8).textContent(), XSS_AGENT)
    await row.getByRole('button', { name: `Details of record ${record?.seq}` }).click()
    const detail = page.getByTestId('record-detail')
    await detail.getByText(keys[1] as string, { exact: false }).waitFor()
    assert.equal(await detail.locator('pre').filter({ hasText: keys[0] as string }).count(), 1)
    assert.equal(await detail.locator('dd').filter({ hasText: /^read-issues$/ }).count(), 1)
    await page.getByRole('button', { name: 'Verify chain' }).click()
    await page.getByTestId('verify-result').getByText(/^Every chain intact: \d+ records in 1 chain; instance ins_[0-9a-f]{16}: \d+ records, last hash [0-9a-f]{64}\.$/).waitFor()
    assert.equal(await page.locator('main img, main script, main svg').count(), 0)
    await shot(page, 'audit-1280')
    await page.getByTestId('record-detail').getByRole('button', { name: 'Close' }).click()
    await page.evaluate(() => window.scrollTo(0, 0))
    await page.screenshot({ path: join(SCREENSHOTS, 'audit-1280-view.png') })
    await page.getByLabel('Session').fill(session)
    await page.getByRole('button', { name: 'Search' }).click()
    await page.getByTestId('records').getByRole('cell', { name: record?.path ?? '' }).first().waitFor()
    assert.equal(await page.getByTestId('records').locator('tbody tr').count(), 1)
    // The console loads its own files only: the browser asks for no /favicon.ico (a refused admin call, audited).
    assert.deepEqual((await kv.audit()).filter((r) => r.mode === 'admin' && r.path === '/favicon.ico'), [])
    await assertInert(page)
    await page.getByRole('button', { name: 'Stop live tail' }).click()

    await page.getByRole('link', { name: 'Connectors and rules' }).click()
    await page.getByRole('table', { name: 'Rules of github' }).getByRole('cell', { name: 'read-issues' }).waitFor()
    assert.equal(await page.getByRole('form', { name: 'Try a request' }).count(), 0, 'an auditor may not explain')
    await page.close()

    const { token: operator } = await kv.adminToken('operator', { name: 'console-explaining' })
    const tryPage = await browser.page()
    await logIn(tryPage, kv.adminUrl as string, operator)
    await tryPage.getByRole('link', { name: 'Connectors and rules' }).click()
    const form = tryPage.getByRole('form', { name: 'Try a request' })
    await form.getByLabel(/^Grants/).fill('github:read')
    await form.getByLabel(/^URL/).fill('/github/repos/acme/app/issues/7')
    await form.getByRole('button', { name: 'Explain' }).click()
    const explained = tryPage.getByTestId('explained')
    await explained.getByRole('heading', { name: 'Allowed' }).waitFor()
    assert.equal(await explained.locator('[data-field="rule"]').textContent(), 'read-issues')
    await form.getByLabel('Method').selectOption('DELETE')
    await form.getByRole('button', { name: 'Explain' }).click()
    await explained.getByRole('heading', { name: 'Refused' }).waitFor()
    await shot(tryPage, 'connectors-1280')
    await assertInert(tryPage)
    await tryPage.close()
  })

  it('approvals: a parked request shown with who, what, summary and digest; approved in the page and forwarded byte for byte; one denied with a reason; one approved for some minutes lets an identical one through', async () => {
    const { token, id: tokenId } = await kv.adminToken('operator', { name: 'console-approver' })
    const { key, session } = await kv.mintKey(['github:write'], { agent: XSS_AGENT })
    const page = await browser.page()
    await logIn(page, kv.adminUrl as string, token)
    await page.getByRole('link', { name: 'Approvals', exact: true }).click()
    await page.getByTestId('pending-count').getByText('No request is waiting.').waitFor()
    const open = (title: string) => fetch(`${kv.url}/github/repos/acme/app/issues`, {
      method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ title, labels: ['bug'] }),
    }).then(async (res) => ({ status: res.status, error: res.headers.get('x-keyvalet-error'), text: await res.text() }))
    const pendingOf = async () => (await (await fetch(`${kv.adminUrl}/v1/approvals`, { headers: { authorization: `Bearer ${token}` } })).json() as { approvals: { id: string; summary: string; digest: string; session: string }[] }).approvals
    const before = upstream.received.length

    // Approved: the page shows it as soon as it is parked (the long poll), with what the API says of it.
    const title = '<img src=x onerror=window.__pwned=8> Fix login'
    const first = open(title)
    const card = page.locator('article[data-approval]')
    await card.waitFor()
    const [pending] = await pendingOf()
    assert.ok(pending !== undefined)
    assert.equal(await card.getAttribute('data-approval'), pending.id)
    assert.equal(await card.getByRole('heading').textContent(), `POST ${new URL(upstream.url).host}/api/repos/acme/app/issues`)
    assert.equal(await card.locator('[data-field="summary"]').textContent(), `Open issue ${title}`)
    assert.equal(pending.summary, `Open issue ${title}`)
    assert.equal(await card.locator('[data-field="digest"]').textContent(), pending.digest)
    assert.equal(await card.getByRole('definition').first().textContent(), XSS_AGENT)
    assert.equal(upstream.received.length, before, 'nothing reaches the upstream before a yes')
    await page.getByTestId('pending-count').getByText('1 request waiting.').waitFor()
    await shot(page, 'approvals-1280')
    await card.getByRole('button', { name: 'Approve', exact: true }).click()
    await page.getByText(/^Approved POST /).waitFor()
    const approved = await first
    assert.equal(approved.status, 200, approved.text)
    const got = upstream.received.at(-1)
    assert.ok(got !== undefined && upstream.received.length === before + 1)
    assert.deepEqual(JSON.parse(got.body.toString()), { title, labels: ['bug'] })
    assert.equal(got.headers.authorization, `Bearer ${SECRET}`)
    assert.equal(receivedDigest(upstream.url, got, ['authorization']), pending.digest, 'the upstream received exactly the bytes the page showed the digest of')
    await page.getByTestId('pending-count').getByText('No request is waiting.').waitFor()

    // Denied with a reason: the sandbox is told, nothing goes upstream.
    const second = open('Delete everything')
    await card.waitFor()
    const reason = '<b>Not on this repo</b>'
    await card.getByLabel('Reason for denying (the sandbox is told)').fill(reason)
    await card.getByRole('button', { name: 'Deny' }).click()
    const denied = await second
    assert.deepEqual([denied.status, denied.error], [403, 'approval_denied'])
    assert.ok(JSON.parse(denied.text).error.message.includes(reason), denied.text)
    assert.equal(upstream.received.length, before + 1)

    // Approved for 5 minutes: an identical request of the session passes without asking.
    const third = open('Same again')
    await card.waitFor()
    await shot(page, 'approvals-pending-1280')
    await card.getByLabel('Let identical requests of this session through for (minutes)').fill('5')
    await card.getByRole('button', { name: 'Approve for these minutes' }).click()
    await page.getByText(/identical requests of session ses_[0-9a-f]+ pass until /).waitFor()
    assert.equal((await third).status, 200)
    assert.equal((await open('Same again')).status, 200, 'remembered')
    assert.equal(upstream.received.length, before + 3)
    assert.equal(await card.count(), 0)

    // A request's record is committed as its exchange ends, which may come just after the client has its answer;
    // one that waited longer than audit.open_after_ms for its approval also has an open record before it.
    const records = await eventually(async () => {
      const found = (await kv.audit()).filter((r) => r.session === session && r.mode === 'gateway' && r.phase !== 'open')
      return found.length >= 4 ? found : undefined
    }, 'the four request records')
    assert.deepEqual(records.map((r) => [r.decision, r.error, r.approval?.decision, r.approval?.approver?.id ?? null, r.approval?.remembered]), [
      ['allow', null, 'approved', tokenId, false],
      ['deny', 'approval_denied', 'denied', tokenId, false],
      ['allow', null, 'approved', tokenId, false],
      ['allow', null, 'approved', tokenId, true],
    ])
    assert.equal(records[0]?.approval?.digest, pending.digest)
    assert.equal(records[1]?.approval?.reason, reason)
    const calls = (await kv.audit()).filter((r) => r.mode === 'admin' && r.actor?.id === tokenId && r.action?.startsWith('approval.') === true && r.action !== 'approval.list')
    assert.deepEqual(calls.map((r) => r.action), ['approval.approve', 'approval.deny', 'approval.approve'])
    assert.equal(await page.locator('main img, main script, main b').count(), 0)
    await assertInert(page)
    await page.close()

    // The overview counts what waits, at 390 px too.
    const waiting = open('Waiting')
    const narrow = await browser.page(390)
    await logIn(narrow, kv.adminUrl as string, token)
    await narrow.getByTestId('pending-approvals').getByText('1').waitFor()
    await narrow.getByRole('link', { name: 'Approvals', exact: true }).click()
    await narrow.locator('article[data-approval]').waitFor()
    await shot(narrow, 'approvals-390')
    assert.ok(await narrow.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'the approvals page fits 390 px')
    await narrow.locator('article[data-approval]').getByLabel('Reason for denying (the sandbox is told)').fill('test over')
    await narrow.locator('article[data-approval]').getByRole('button', { name: 'Deny' }).click()
    assert.equal((await waiting).status, 403)
    await assertInert(narrow)
    await narrow.close()
  })

  it('budgets: each live session\'s use and what is left, as the API and the upstream count it, at 1280 and 390 px', async () => {
    const { token } = await kv.adminToken('operator', { name: 'console-budgets' })
    const { session, key } = await kv.runtime.sessions.create({ agent: 'budget-bot', user: 'alice', workspace: 'acme', grants: [parseGrant('github:read')], ttlMs: 3_600_000, budget: 2 })
    const before = upstream.received.length
    const statuses: number[] = []
    const errors: (string | null)[] = []
    for (const n of [1, 2, 3]) {
      const res = await fetch(`${kv.url}/github/repos/acme/app/issues/${n}`, { headers: { authorization: `Bearer ${key}` } })
      await res.text()
      statuses.push(res.status)
      errors.push(res.headers.get('x-keyvalet-error'))
    }
    assert.deepEqual([statuses, errors], [[200, 200, 429], [null, null, 'budget_exhausted']])
    assert.deepEqual(upstream.received.slice(before).map((r) => r.url), ['/api/repos/acme/app/issues/1', '/api/repos/acme/app/issues/2'], 'the third never left')
    const records = await eventually(async () => {
      const found = (await kv.audit()).filter((r) => r.session === session.id)
      return found.length >= 3 ? found : undefined
    }, 'the three request records')
    assert.deepEqual(records.map((r) => [r.decision, r.error]), [['allow', null], ['allow', null], ['deny', 'budget_exhausted']])
    const oracle = await (await fetch(`${kv.adminUrl}/v1/sessions/${session.id}`, { headers: { authorization: `Bearer ${token}` } })).json() as { budgets: { budget: string; used: number; left: number; limit: number }[] }
    assert.deepEqual(oracle.budgets.map((b) => [b.budget, b.used, b.left, b.limit]), [['session', 2, 0, 2], ['issue-reads', 2, 48, 50]])

    for (const width of [1280, 390]) {
      const page = await browser.page(width)
      await logIn(page, kv.adminUrl as string, token)
      await page.getByRole('link', { name: 'Budgets' }).click()
      await page.getByRole('search', { name: 'Find live sessions' }).getByLabel('Agent').fill('budget-bot')
      await page.getByRole('button', { name: 'Filter' }).click()
      const shown = page.getByRole('table', { name: /^Budget use of live sessions \(1 on this page\)$/ })
      await shown.waitFor()
      for (const use of oracle.budgets) {
        const row = shown.getByRole('row').filter({ has: page.getByRole('cell', { name: use.budget, exact: true }) })
        assert.equal(await row.getByRole('cell').first().textContent(), session.id)
        assert.deepEqual(await Promise.all([4, 5, 6].map((i) => row.getByRole('cell').nth(i).textContent())), [String(use.used), String(use.left), String(use.limit)])
      }
      await shot(page, `budgets-${width}`)
      assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), `the budgets page fits ${width} px`)
      await assertInert(page)
      await page.close()
    }
  })

  it('every page, with the keyboard alone: labelled controls, named buttons, captions, visible focus on every control; screenshots of each at 1280 and 390 px', async () => {
    const { token } = await kv.adminToken('admin', { name: 'console-keyboard' })
    kv.now = Date.now()
    // A request waits for approval, so that the Approvals page has a card and its forms to check.
    const { key } = await kv.mintKey(['github:write'], { agent: 'keyboard-bot' })
    const waiting = fetch(`${kv.url}/github/repos/acme/app/issues`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{"title":"t"}' })
    for (const width of [1280, 390]) {
      const page = await browser.page(width)
      await page.goto(`${kv.adminUrl}/console`)
      await page.getByLabel('Admin token').waitFor()
      assert.deepEqual(await a11yProblems(page), [], 'login')
      // The login form takes focus; typing and Enter log in.
      await page.keyboard.type(token)
      await page.keyboard.press('Enter')
      await page.getByText('console-keyboard (admin)').waitFor()
      const titles = await page.locator('#nav a').allTextContents()
      assert.deepEqual(titles, ['Overview', 'Approvals', 'Sessions', 'Budgets', 'Audit', 'Connectors and rules', 'Secrets'])
      for (const title of titles) {
        // To the page's link from the top with Tab, then Enter.
        await fromTheTop(page)
        for (let i = 0; i < 10 && (await page.evaluate(() => document.activeElement?.textContent)) !== title; i++) await page.keyboard.press('Tab')
        await page.keyboard.press('Enter')
        await page.getByRole('heading', { name: title, level: 1 }).waitFor()
        // The Overview's heading is there before Enter was handled (it is the page shown at login): wait for the move, bounded.
        await page.waitForFunction(() => document.activeElement?.id === 'main', undefined, { timeout: 5_000 }).catch(() => {})
        assert.equal(await page.evaluate(() => document.activeElement?.id), 'main', 'focus moves to the page shown')
        await fromTheTop(page)
        await page.keyboard.press('Enter')
        assert.equal(await page.evaluate(() => document.activeElement?.id), 'main', 'the skip link goes to the page')
        assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), title, 'the skip link stays on the page')
        await page.waitForLoadState('networkidle')
        await page.locator('main :is(table, form):visible').first().waitFor()
        assert.deepEqual(await a11yProblems(page), [], title)
        const tabbed = await tabThrough(page)
        assert.deepEqual(tabbed.problems, [], title)
        assert.deepEqual(tabbed.missed, [], `${title}: every control is reached with Tab`)
        assert.ok(tabbed.reached >= 8, `${title}: ${tabbed.reached}`)
        const id = title.split(' ')[0]?.toLowerCase()
        await shot(page, `page-${id}-${width}`)
        assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), `${title} fits ${width} px`)
      }
      await assertInert(page)
      await page.close()
    }
    const [pending] = (await (await fetch(`${kv.adminUrl}/v1/approvals`, { headers: { authorization: `Bearer ${token}` } })).json() as { approvals: { id: string }[] }).approvals
    assert.equal((await fetch(`${kv.adminUrl}/v1/approvals/${pending?.id}/deny`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"reason":"test over"}' })).status, 200)
    assert.equal((await waiting).status, 403)
  })

  it('auditor: offered neither sessions nor secrets, and the API refuses the calls from the console anyway', async () => {
    const { token } = await kv.adminToken('auditor', { name: 'console-auditor' })
    const page = await browser.page()
    await logIn(page, kv.adminUrl as string, token)
    await page.getByText('console-auditor (auditor)').waitFor()
    assert.deepEqual(await page.locator('#nav a').allTextContents(), ['Overview', 'Audit', 'Connectors and rules'])
    await page.evaluate(() => { location.hash = '#secrets' })
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor()
    assert.equal(await page.getByRole('form', { name: 'Set or replace a secret' }).count(), 0)
    // A reload forgets the token: the console asks for it again.
    await page.reload()
    await page.getByLabel('Admin token').waitFor()
    const answers = await page.evaluate(async (t) => Promise.all([
      fetch('/v1/sessions', { method: 'POST', headers: { authorization: `Bearer ${t}`, 'content-type': 'application/json' }, body: JSON.stringify({ agent: 'a', user: 'u', workspace: 'w', grant: ['github:read'] }) }),
      fetch('/v1/secrets/x', { method: 'PUT', headers: { authorization: `Bearer ${t}`, 'content-type': 'application/json' }, body: JSON.stringify({ value: 'v' }) }),
    ].map(async (p) => { const r = await p; return [r.status, (await r.json()).error.code] })), token)
    assert.deepEqual(answers, [[403, 'admin_role_forbidden'], [403, 'admin_role_forbidden']])
    await assertInert(page)
    await page.close()
  })
})
