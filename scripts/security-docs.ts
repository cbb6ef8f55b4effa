/**
 * Writes the generated parts of docs/security.md from the code they describe, between marker
 * comments, leaving the prose around them alone. Today: the routing headers keyvalet drops
 * (src/proxy/routing-headers.ts).
 *
 *   node scripts/security-docs.ts           rewrites docs/security.md
 *   node scripts/security-docs.ts --check   exits 1 when docs/security.md is stale
 */

import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { ROUTING_HEADER_KINDS, ROUTING_HEADERS, type RoutingHeaderKind } from '../src/proxy/routing-headers.ts'

export const SECURITY_DOCS_FILE = fileURLToPath(new URL('../docs/security.md', import.meta.url))

const START = '<!-- generated from src/proxy/routing-headers.ts by npm run docs: do not edit -->'
const END = '<!-- end of generated routing headers -->'

/** The table of routing headers, one row per kind. */
export function renderRoutingHeaders(): string {
  const rows = (Object.keys(ROUTING_HEADER_KINDS) as RoutingHeaderKind[]).map((kind) => {
    const names = ROUTING_HEADERS.filter((h) => h.kind === kind).map((h) => `\`${h.name}${h.prefix === true ? '*' : ''}\``)
    return `| ${names.join(', ')} | ${ROUTING_HEADER_KINDS[kind]} |`
  })
  return [START, '| dropped (`*`: every name that starts so) | what a front end takes them for |', '|---|---|', ...rows, END].join('\n')
}

/** docs/security.md with its generated section replaced; throws when the markers are missing. */
export function renderSecurityDocs(current: string): string {
  const start = current.indexOf(START)
  const end = current.indexOf(END)
  if (start === -1 || end < start) throw new Error('docs/security.md has no routing-header markers')
  return current.slice(0, start) + renderRoutingHeaders() + current.slice(end + END.length)
}

if (import.meta.main) {
  const current = readFileSync(SECURITY_DOCS_FILE, 'utf8')
  const rendered = renderSecurityDocs(current)
  if (process.argv.includes('--check')) {
    if (current !== rendered) {
      console.error('docs/security.md is stale: run npm run docs')
      process.exit(1)
    }
  } else {
    writeFileSync(SECURITY_DOCS_FILE, rendered)
    console.log(`wrote ${SECURITY_DOCS_FILE}`)
  }
}
