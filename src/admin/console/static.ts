/**
 * The web console's files, served by the admin listener under /console: the files of `assets/`,
 * read once when the listener is built, each answered by exact name (a lookup in a map, so no path
 * a caller sends can reach another file). The files are public and hold nothing secret: the
 * console logs in by sending an admin token to the admin API like any other client, so these
 * answers are neither authenticated nor audited (like the health probes).
 *
 * Every answer carries a Content-Security-Policy that lets the page run only keyvalet's own
 * scripts and styles (no inline script or style, no other origin, no framing) and requires Trusted
 * Types, so that assigning a string to innerHTML or a similar sink throws instead of parsing
 * markup: what the sandbox controls can only ever be shown as text.
 */
import { readdirSync, readFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Where the console is served. */
export const CONSOLE_PATH = '/console'

const ASSETS = fileURLToPath(new URL('./assets/', import.meta.url))

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
}

export const CONSOLE_CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self'", "connect-src 'self'",
  "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
  "require-trusted-types-for 'script'", "trusted-types 'none'",
].join('; ')

const HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONSOLE_CSP,
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=()',
  // The files change with keyvalet itself: revalidate on every load rather than trust a cache.
  'cache-control': 'no-cache',
}

interface Asset {
  readonly type: string
  readonly body: Buffer
}

export interface ConsoleFiles {
  /** True when `pathname` is the console's: the caller then answers nothing else. */
  owns(pathname: string): boolean
  serve(req: IncomingMessage, res: ServerResponse, pathname: string): void
}

/** Reads the console's files (assets/ and its folders) once. */
export function consoleFiles(): ConsoleFiles {
  const files = new Map<string, Asset>()
  const walk = (dir: string, prefix: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(dir, entry.name), `${prefix}${entry.name}/`)
      const type = TYPES[/\.[a-z]+$/.exec(entry.name)?.[0] ?? '']
      if (entry.isFile() && type !== undefined) files.set(`${CONSOLE_PATH}/${prefix}${entry.name}`, { type, body: readFileSync(join(dir, entry.name)) })
    }
  }
  walk(ASSETS, '')
  const index = files.get(`${CONSOLE_PATH}/index.html`)
  if (index !== undefined) files.set(CONSOLE_PATH, index).set(`${CONSOLE_PATH}/`, index)
  return {
    owns: (pathname) => pathname === CONSOLE_PATH || pathname.startsWith(`${CONSOLE_PATH}/`),
    serve(req, res, pathname) {
      const asset = files.get(pathname)
      const method = req.method ?? ''
      const [status, type, body] = asset === undefined ? [404, 'text/plain; charset=utf-8', Buffer.from('Not found\n')]
        : method !== 'GET' && method !== 'HEAD' ? [405, 'text/plain; charset=utf-8', Buffer.from('The console takes GET\n')]
        : [200, asset.type, asset.body]
      res.writeHead(status, { ...HEADERS, 'content-type': type, 'content-length': body.length, ...(status === 405 ? { allow: 'GET, HEAD' } : {}) })
      res.end(method === 'HEAD' ? undefined : body)
    },
  }
}
