import { AdminTokens } from '../../admin/tokens.ts'
import { loadConfig } from '../../config/load.ts'
import { parseDuration } from '../../duration.ts'
import { OperatorError } from '../../errors.ts'
import type { AdminToken } from '../../model/admin-token.ts'
import { openRuntime } from '../../runtime.ts'
import { CONFIG_OPTION, configPath, parse, write } from '../args.ts'
import type { Command } from '../command.ts'

const help = `usage: keyvalet admin token <create|list|revoke> [options]
  create --name NAME --role admin|operator|auditor|approver [--ttl 90d] [--json]
         mint an admin token (kva_...) for the admin API (listen.admin); it is printed once and
         stored only as a SHA-256 digest. Roles: admin (everything, including secrets and admin
         tokens), operator (sessions, read config, explain), auditor (read audit, config, metrics),
         approver (list and decide approvals only).
         Without --ttl it lasts until revoked.
  list [--json]   every admin token with its role and state; never a token value
  revoke ID       revoke at once: the next call with that token is refused`

export const admin: Command = {
  name: 'admin',
  help,
  async run(args, io) {
    const { values, positionals } = parse(args, { ...CONFIG_OPTION, name: { type: 'string' }, role: { type: 'string' }, ttl: { type: 'string' }, json: { type: 'boolean' } }, help)
    const [group, action, id] = positionals
    if (group !== 'token') throw new OperatorError(`unknown admin command ${JSON.stringify(group ?? '')}`, 'use: keyvalet admin token create | list | revoke ID')
    if (action !== 'create' && action !== 'list' && action !== 'revoke') throw new OperatorError(`unknown action ${JSON.stringify(action ?? '')}`, 'use: keyvalet admin token create | list | revoke ID')
    const config = loadConfig(configPath(values.config, io))
    const runtime = await openRuntime(config, { env: io.env, createMasterKey: false })
    const tokens = new AdminTokens(runtime.store.adminTokens, Date.now)
    try {
      if (action === 'create') {
        if (values.name === undefined) throw new OperatorError('--name is required', 'e.g. --name orchestrator')
        if (values.role === undefined) throw new OperatorError('--role is required', 'one of admin, operator, auditor, approver')
        const { token, value } = await tokens.create({ name: values.name, role: values.role, ...(values.ttl === undefined ? {} : { ttlMs: parseDuration(values.ttl) }) })
        if (values.json === true) write(io.stdout, JSON.stringify({ ...view(token, Date.now()), token: value }))
        else write(io.stdout, `admin token ${token.id} "${token.name}", role ${token.role}, ${token.expiresAt === undefined ? 'no expiry' : `expires ${iso(token.expiresAt)}`}\nadmin token (shown once): ${value}`)
        return 0
      }
      if (action === 'list') {
        const now = Date.now()
        const list = (await tokens.list()).map((t) => view(t, now))
        if (values.json === true) write(io.stdout, JSON.stringify(list))
        else if (list.length === 0) write(io.stdout, 'no admin tokens')
        else for (const t of list) write(io.stdout, `${t.id}\t${t.state}\t${t.role}\t${t.name}\texpires ${t.expires_at ?? 'never'}`)
        return 0
      }
      if (id === undefined) throw new OperatorError('admin token revoke needs a token ID', 'see keyvalet admin token list')
      if (!(await tokens.revoke(id))) throw new OperatorError(`no admin token ${id}`)
      write(io.stdout, `revoked ${id}`)
      return 0
    } finally {
      await runtime.close()
    }
  },
}

function iso(ms: number): string {
  return new Date(ms).toISOString()
}

function view(t: AdminToken, now: number) {
  const state = t.revokedAt !== undefined ? 'revoked' : t.expiresAt !== undefined && now >= t.expiresAt ? 'expired' : 'active'
  return {
    id: t.id, name: t.name, role: t.role, state, created_at: iso(t.createdAt),
    expires_at: t.expiresAt === undefined ? null : iso(t.expiresAt), revoked_at: t.revokedAt === undefined ? null : iso(t.revokedAt),
  }
}
