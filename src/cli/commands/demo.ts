import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AuditWriter } from '../../audit/audit-writer.ts'
import { parseConfig } from '../../config/load.ts'
import { startDemoUpstream } from '../../demo/upstream.ts'
import { silentLogger } from '../../log.ts'
import { createProxy } from '../../proxy/proxy.ts'
import { openRuntime } from '../../runtime.ts'
import { parse, write } from '../args.ts'
import type { Command } from '../command.ts'

const help = `usage: keyvalet demo

Shows the whole flow on this machine, offline, in a temporary folder that is removed afterwards:
a local stand-in upstream, a stored credential, a task key, one allowed request with the
credential attached (as the upstream saw it), one refused request with its reason, and the
audit records of both, verified.`

export const demo: Command = {
  name: 'demo',
  help,
  async run(args, io) {
    parse(args, {}, help)
    const dir = mkdtempSync(join(tmpdir(), 'keyvalet-demo-'))
    const out = (line = ''): void => write(io.stdout, line)
    let upstreamSaw = ''
    const upstream = await startDemoUpstream({ host: '127.0.0.1', port: 0, onRequest: (seen) => { upstreamSaw = `${seen.method} ${seen.path}, authorization: ${String(seen.headers.authorization)}` } })
    const config = parseConfig(demoConfig(upstream.url), join(dir, 'keyvalet.yaml'))
    const runtime = await openRuntime(config, { env: { KEYVALET_MASTER_KEY: randomBytes(32).toString('base64') }, createMasterKey: false })
    const audit = await AuditWriter.start({ store: runtime.storeLocation, key: await runtime.openAuditKey(), reserveBytes: config.auditReserveBytes })
    const gateway = createProxy({ config, sessions: runtime.sessions, vault: runtime.vault, store: runtime.store, audit, log: silentLogger })
    try {
      const { url } = await gateway.listen()
      const secretValue = `demo-secret-${randomBytes(8).toString('hex')}`
      await runtime.vault.put('demo-token', Buffer.from(secretValue))
      out(`1. stored credential "demo-token" in the encrypted vault (value ${secretValue}; only keyvalet and the upstream ever see it)`)
      const { session, key } = await runtime.sessions.create({ agent: 'demo-agent', user: 'alice', workspace: 'demo', grants: [{ connector: 'demo', maxSeverity: 'write', rules: undefined }], ttlMs: 600_000 })
      out(`2. minted task key for agent demo-agent, user alice, grant demo:write (session ${session.id}): ${key.slice(0, 12)}…`)
      out(`3. gateway on ${url}, stand-in upstream on ${upstream.url}`)
      out()
      const allowed = await fetch(`${url}/demo/items/42`, { headers: { authorization: `Bearer ${key}` } })
      out(`allowed:  GET ${url}/demo/items/42  with the task key as bearer token`)
      out(`  upstream saw:  ${upstreamSaw}`)
      out(`  sandbox got:   ${allowed.status} ${await allowed.text()}`)
      out()
      upstreamSaw = '(nothing: the request never left keyvalet)'
      const refused = await fetch(`${url}/demo/items/42`, { method: 'DELETE', headers: { authorization: `Bearer ${key}` } })
      out(`refused:  DELETE ${url}/demo/items/42`)
      out(`  upstream saw:  ${upstreamSaw}`)
      out(`  sandbox got:   ${refused.status} ${refused.headers.get('x-keyvalet-error')} ${await refused.text()}`)
      out()
      out('audit records:')
      for (const row of await runtime.store.audit.read(0, 10)) out(`  ${row.line}`)
      const { verifyAudit } = await import('../../audit/verify.ts')
      const verdict = await verifyAudit(runtime.store.audit, await runtime.openAuditKey())
      out(verdict.ok ? `audit verify: ok, ${verdict.count} records, chain intact` : `audit verify: BROKEN in instance ${verdict.instance} at ${verdict.seq}`)
      return allowed.status === 200 && refused.status === 403 && verdict.ok ? 0 : 1
    } finally {
      await gateway.close()
      await audit.close()
      await runtime.close()
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    }
  },
}

function demoConfig(upstreamUrl: string): string {
  return `version: 1
listen:
  gateway: "127.0.0.1:0"
data_dir: ./data
connectors:
  demo:
    upstream: ${upstreamUrl}
    allow_insecure: true
    allow_addresses: [127.0.0.1/32]
    credential: { secret: demo-token, inject: bearer }
    rules:
      - { id: read-items, methods: [GET], path: /items/**, severity: read }
      - { id: delete-item, methods: [DELETE], path: /items/*, severity: admin }
`
}
