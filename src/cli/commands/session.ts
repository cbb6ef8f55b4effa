import { loadConfig } from '../../config/load.ts'
import { OperatorError } from '../../errors.ts'
import { formatGrant } from '../../policy/grant.ts'
import { openRuntime, type Runtime } from '../../runtime.ts'
import { readSessionOptions, SESSION_FLAGS, type SessionOptionValues } from '../../sessions/options.ts'
import type { Session } from '../../model/session.ts'
import { CONFIG_OPTION, configPath, parse, write } from '../args.ts'
import type { Command } from '../command.ts'
import { dotenvLines, sandboxEnv, shellLines } from '../sandbox-env.ts'

const help = `usage: keyvalet session <create|list|revoke> [options]

  create --agent A --user U --workspace W --grant CONNECTOR:SEVERITY[:RULE,...] [--grant ...]
         [--ttl 1h] [--task ID] [--env | --dotenv [--ca-file PATH]] [--json]
         mint a task key for one agent session; the key is printed once and stored only as a hash.
         --env prints instead the environment a sandbox needs, as export lines a shell can eval
         (the session id in a comment): the proxy variables, the CA bundle at PATH (written by
         keyvalet ca bundle --out PATH) in every trust variable, placeholders, NO_PROXY for
         listen.gateway_url only; or gateway base URLs without a forward proxy.
         --dotenv prints the same as NAME=value lines (docker --env-file, kubectl --from-env-file).
  list [--json]      every session with its state
  revoke ID          revoke at once: the next request with that key is refused`

export const session: Command = {
  name: 'session',
  summary: 'mint, list and revoke task keys',
  help,
  async run(args, io) {
    const { values, positionals } = parse(args, {
      ...CONFIG_OPTION, ...SESSION_FLAGS,
      env: { type: 'boolean' }, dotenv: { type: 'boolean' }, json: { type: 'boolean' }, 'ca-file': { type: 'string' },
    }, help)
    const [action, id] = positionals
    const config = loadConfig(configPath(values.config, io))
    const runtime = await openRuntime(config, { env: io.env, createMasterKey: false })
    try {
      if (action === 'create') {
        if ([values.env, values.dotenv, values.json].filter((v) => v === true).length > 1) throw new OperatorError('--env, --dotenv and --json are alternatives: choose one')
        const { session: created, key } = await createSession(runtime, values)
        const asEnv = values.env === true ? shellLines : values.dotenv === true ? dotenvLines : undefined
        if (asEnv !== undefined) {
          const about = { comment: `keyvalet session ${created.id} for agent ${created.agent} (user ${created.user}, workspace ${created.workspace}, task ${created.task}), expires ${new Date(created.expiresAt).toISOString()}` }
          write(io.stdout, asEnv([about, ...sandboxEnv(config, key, values['ca-file'])]))
        } else if (values.json === true) write(io.stdout, JSON.stringify({ ...view(created, Date.now()), key }))
        else write(io.stdout, `session ${created.id} for ${created.agent} (user ${created.user}, workspace ${created.workspace}, task ${created.task}), expires ${new Date(created.expiresAt).toISOString()}\ntask key (shown once): ${key}`)
        return 0
      }
      if (action === 'list') {
        const now = Date.now()
        const list = (await runtime.sessions.list()).map((s) => view(s, now))
        if (values.json === true) write(io.stdout, JSON.stringify(list))
        else if (list.length === 0) write(io.stdout, 'no sessions')
        else for (const s of list) write(io.stdout, `${s.id}\t${s.state}\t${s.agent}\t${s.user}\t${s.workspace}\t${s.task}\t${s.grants.join(' ')}\texpires ${s.expires_at}`)
        return 0
      }
      if (action === 'revoke') {
        if (id === undefined) throw new OperatorError('session revoke needs a session ID', 'see keyvalet session list')
        if (!(await runtime.sessions.revoke(id))) throw new OperatorError(`no session ${id}`)
        write(io.stdout, `revoked ${id}`)
        return 0
      }
      throw new OperatorError(`unknown action ${JSON.stringify(action ?? '')}`, 'use: keyvalet session create | list | revoke ID')
    } finally {
      await runtime.close()
    }
  },
}

/** The session flags of `session create` (and `run`) → a new session and its task key. */
export async function createSession(runtime: Runtime, flags: SessionOptionValues) {
  return runtime.sessions.create(readSessionOptions(flags, runtime.config.policy))
}

function view(s: Session, now: number) {
  const state = s.revokedAt !== undefined ? 'revoked' : now >= s.expiresAt ? 'expired' : 'active'
  return {
    id: s.id, state, agent: s.agent, user: s.user, workspace: s.workspace, task: s.task, grants: s.grants.map(formatGrant),
    created_at: new Date(s.createdAt).toISOString(), expires_at: new Date(s.expiresAt).toISOString(),
    revoked_at: s.revokedAt === undefined ? null : new Date(s.revokedAt).toISOString(),
  }
}
