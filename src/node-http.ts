import { createRequire } from 'node:module'

/**
 * node:http, loaded with `require` rather than `import`. Node's ESM facade of a builtin reads every
 * export once, and node:http's lazy `WebSocket`, `CloseEvent` and `MessageEvent` getters then load
 * Node's own bundled undici (fetch, WebSocket), which keyvalet never uses: ~13 MiB of resident
 * memory in every process (test/e2e/startup-modules.test.ts). Type-only imports of node:http stay
 * as they are; values come from here.
 */
const http: typeof import('node:http') = createRequire(import.meta.url)('node:http')

export const { createServer, STATUS_CODES } = http
