import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { ROUTING_HEADERS } from '../src/proxy/routing-headers.ts'
import { renderSecurityDocs, SECURITY_DOCS_FILE } from './security-docs.ts'

test('docs/security.md lists exactly the routing headers the code drops', () => {
  const current = readFileSync(SECURITY_DOCS_FILE, 'utf8')
  assert.equal(current, renderSecurityDocs(current), 'docs/security.md is stale: run npm run docs')
  for (const h of ROUTING_HEADERS) assert.ok(current.includes(`\`${h.name}${h.prefix === true ? '*' : ''}\``), `${h.name} is not in docs/security.md`)
})
