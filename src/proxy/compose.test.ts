import { Approvals } from '../approvals/approvals.ts'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { AssertionKeys } from '../assertion/keys.ts'
import { CounterLeases } from '../budgets/leases.ts'
import { UserValues } from '../attribution/user-value.ts'
import { parseConfig } from '../config/load.ts'
import { TokenHttp } from '../credentials/token-http.ts'
import { Resolver } from '../egress/resolver.ts'
import { silentLogger } from '../log.ts'
import { Sessions } from '../sessions/sessions.ts'
import { SqliteStore } from '../store/sqlite-store.ts'
import { loadMasterKey } from '../vault/master-key.ts'
import { Vault } from '../vault/vault.ts'
import { composeStages, type Composition } from './compose.ts'
import type { StageList } from './pipeline.ts'
import { Sources } from './stages/credential.ts'
import { Upstreams } from './upstreams.ts'

const root = mkdtempSync(join(tmpdir(), 'keyvalet-compose-'))
const store = SqliteStore.open(join(root, 'keyvalet.db'))
after(() => {
  store.close()
  rmSync(root, { recursive: true, force: true })
})

const CONFIG = `version: 1
connectors:
  plain:
    upstream: https://api.plain.example
    credential: { secret: plain-key, inject: bearer }
    rules: [{ id: all, methods: [GET], path: "/**", severity: read }]
  model:
    upstream: https://api.model.example/v1
    credential: { secret: model-key, inject: bearer }
    assertion: {}
    attribution: { body_field: user, header: X-User-Id }
    rules: [{ id: chat, methods: [POST], path: /chat, severity: write }]
  s3:
    upstream: https://s3.eu-west-1.amazonaws.com
    credential: { secret: aws-key, inject: aws_sigv4, aws: { service: s3, region: eu-west-1 } }
    rules: [{ id: read, methods: [GET], path: "/bucket/**", severity: read }]
  tools:
    upstream: https://mcp.tools.example
    credential: { secret: tools-key, inject: bearer }
    mcp: { endpoint: /mcp, tools: [{ id: list, name: list_issues, severity: read }] }
`

function composed(): Composition {
  const config = parseConfig(CONFIG, 'keyvalet.yaml')
  const vault = new Vault(store.secrets, loadMasterKey({ env: { KEYVALET_MASTER_KEY: randomBytes(32).toString('hex') }, dataDir: root, create: false }), Date.now)
  const resolver = new Resolver({})
  const upstreams = new Upstreams({ headersTimeoutMs: 1000, resolver, upstreamProxy: undefined, vault })
  const sources = new Sources({ vault, clock: Date.now, http: new TokenHttp({ resolver, vault }), log: silentLogger, locks: store.locks })
  return composeStages({
    config, sessions: new Sessions(store.sessions, Date.now), store, audit: { available: true }, upstreams, sources,
    assertionKeys: new AssertionKeys(vault, Date.now), userValues: new UserValues(vault), approvals: new Approvals({ repo: store.approvals, clock: Date.now, log: silentLogger }), leases: new CounterLeases(store.counters), clock: Date.now,
  })
}

/** A list as `prepare | send`, by stage name. */
function names(list: StageList | undefined): string {
  assert.ok(list !== undefined)
  return `${list.prepare.map((s) => s.name).join(' ')} | ${list.send.map((s) => s.name).join(' ')}`
}

describe('the stage composition', () => {
  const { admit, connectors: lists } = composed()

  it('admits every request with authenticate, then route', () => {
    assert.deepEqual(admit.map((s) => s.name), ['authenticate', 'route'])
  })

  it('leaves out of a connector its stages it does not need: no assertion, attribution or copy source for a plain bearer connector', () => {
    const plain = lists.get('plain')
    assert.equal(names(plain?.request), 'decide budget approve credential inject | audit-gate approved-check forward')
    assert.equal(names(plain?.retry), 'credential inject | audit-gate approved-check forward')
    assert.equal(names(plain?.upgrade), 'decide budget approve credential inject | audit-gate approved-check')
  })

  it('puts in the assertion and attribution stages of a connector that has them, in their order', () => {
    const model = lists.get('model')
    assert.equal(names(model?.request), 'decide budget attribute approve credential inject | assert attribute-header audit-gate approved-check forward')
    assert.equal(names(model?.retry), 'credential inject | assert attribute-header audit-gate approved-check forward')
    assert.equal(names(model?.upgrade), 'decide budget attribute approve credential inject | assert attribute-header audit-gate approved-check')
  })

  it('decides the S3 copy source only for an aws_sigv4 connector', () => {
    assert.equal(names(lists.get('s3')?.request), 'decide budget copy-source approve credential inject | audit-gate approved-check forward')
  })

  it('decides an MCP connector with mcp-decide and narrows its lists after forward, on the first attempt and the retry', () => {
    const tools = lists.get('tools')
    assert.equal(names(tools?.request), 'mcp-decide budget approve credential inject | audit-gate approved-check forward mcp-lists')
    assert.equal(names(tools?.retry), 'credential inject | audit-gate approved-check forward mcp-lists')
    assert.equal(names(tools?.upgrade), 'mcp-decide budget approve credential inject | audit-gate approved-check')
  })
})
