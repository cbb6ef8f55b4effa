import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type BrowserContext, type Page } from 'playwright-core'

/** Debian's chromium (`.ci/run` installs it). */
export const CHROMIUM = '/usr/bin/chromium'

/** Where browser tests save their screenshots (ignored by git). */
export const SCREENSHOTS = fileURLToPath(new URL('../../test-output/console/', import.meta.url))

export interface TestBrowser {
  readonly context: BrowserContext
  /** A new tab that records CSP violations (window.__csp) and console errors, at `width` px. */
  page(width?: number): Promise<Page & { errors: string[] }>
  close(): Promise<void>
}

/**
 * Real headless Chromium, driven by playwright-core, with a fresh profile of its own; no network
 * beyond what the test opens (loopback), no background traffic of Chromium's own.
 */
export async function startBrowser(): Promise<TestBrowser> {
  const profile = mkdtempSync(join(tmpdir(), 'keyvalet-chromium-'))
  mkdirSync(SCREENSHOTS, { recursive: true })
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    viewport: { width: 1280, height: 900 },
  })
  // Runs before any script of the page: every CSP violation the page meets is kept for the test.
  await context.addInitScript(() => {
    const w = window as unknown as { __csp: string[] }
    w.__csp = []
    document.addEventListener('securitypolicyviolation', (e) => w.__csp.push(`${e.violatedDirective} ${e.blockedURI}`))
  })
  return {
    context,
    async page(width = 1280) {
      const page = await context.newPage()
      await page.setViewportSize({ width, height: 900 })
      const errors: string[] = []
      page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()) })
      page.on('pageerror', (e) => errors.push(String(e)))
      return Object.assign(page, { errors })
    },
    async close() {
      await context.close()
      rmSync(profile, { recursive: true, force: true })
    },
  }
}
