import type { AdminClient } from '../../admin/client.ts'
import { loadConfig } from '../../config/load.ts'
import { OperatorError } from '../../errors.ts'
import { openRuntime, type Runtime } from '../../runtime.ts'
import { readSessionOptions, SESSION_FLAGS, type SessionOptionValues } from '../../sessions/options.ts'
import { sessionView as view, type SessionDetail, type SessionView } from '../../sessions/view.ts'
import { Budgets } from '../../budgets/budgets.ts'
import { CONFIG_OPTION, configPath, parse, write } from '../args.ts'
import type { Command } from '../command.ts'
import { dotenvLines, sandboxEnv, shellLines, type EnvLine } from '../../sessions/sandbox-env.ts'
import { remoteClient, SERVER_OPTION } from '../remote.ts'

const help = `usage: keyvalet session <create|list|show|revoke> [options]

  create --agent A --user U --workspace W --grant CONNECTOR:SEVERITY[:RULE,...] [--grant ...]
         [--ttl 1h] [--task ID] [--budget N] [--env | --dotenv [--ca-file PATH]] [--json]
         mint a task key for one agent session; the key is printed once and stored only as a hash.
         --env prints instead the environment a sandbox needs, as export lines a shell can eval
         (the session id in a comment): the proxy variables, the CA bundle at PATH (written by
         keyvalet ca bundle --out PATH) in every trust variable, placeholders, NO_PROXY for
         listen.gateway_url only; or gateway base URLs without a forward proxy.
         --dotenv prints the same as NAME=value lines (docker --env-file, kubectl --from-env-file).
  list [--json]      every session with its state
  show ID [--json]   one session, and what it has used and has left of every budget that applies to it
  revoke ID          revoke at once: the next request with that key is refused
--server URL         do it through the admin API of a running keyvalet (listen.admin) instead of
                     the local database, with the admin token in KEYVALET_ADMIN_TOKEN (role
                     operator or admin); --env and --dotenv then give the addresses it listens on`

export const session: Command = {
  name: 'session',
  help,
  async run(args, io) {
    const { values, positionals } = parse(args, {
      ...CONFIG_OPTION, ...SESSION_FLAGS, ...SERVER_OPTION,
      env: { type: 'boolean' }, dotenv: { type: 'boolean' }, json: { type: 'boolean' }, 'ca-file': { type: 'string' },
    }, help)
    const [action, id] = positionals
    if (action !== 'create' && action !== 'list' && action !== 'show' && action !== 'revoke') throw new OperatorError(`unknown action ${JSON.stringify(action ?? '')}`, 'use: keyvalet session create | list | show ID | revoke ID')
    if (action === 'create' && [values.env, values.dotenv, values.json].filter((v) => v === true).length > 1) throw new OperatorError('--env, --dotenv and --json are alternatives: choose one')
    if ((action === 'revoke' || action === 'show') && id === undefined) throw new OperatorError(`session ${action} needs a session ID`, 'see keyvalet session list')
    const sessions = values.server === undefined ? undefined : remoteSessions(remoteClient(values.server, io))
    const config = sessions === undefined ? loadConfig(configPath(values.config, io)) : undefined
    const runtime = config === undefined ? undefined : await openRuntime(config, { env: io.env, createMasterKey: false })
    const here = sessions ?? localSessions(runtime as Runtime)
    try {
      if (action === 'create') {
        const { session: created, key, env } = await here.create(values)
        const asEnv = values.env === true ? shellLines : values.dotenv === true ? dotenvLines : undefined
        if (asEnv !== undefined) {
          const about = { comment: `keyvalet session ${created.id} for agent ${created.agent} (user ${created.user}, workspace ${created.workspace}, task ${created.task}), expires ${created.expires_at}` }
          write(io.stdout, asEnv([about, ...env]))
        } else if (values.json === true) write(io.stdout, JSON.stringify({ ...created, key }))
        else write(io.stdout, `session ${created.id} for ${created.agent} (user ${created.user}, workspace ${created.workspace}, task ${created.task}), expires ${created.expires_at}\ntask key (shown once): ${key}`)
        return 0
      }
      if (action === 'list') {
        const list = await here.list()
        if (values.json === true) write(io.stdout, JSON.stringify(list))
        else if (list.length === 0) write(io.stdout, 'no sessions')
        else for (const s of list) write(io.stdout, `${s.id}\t${s.state}\t${s.agent}\t${s.user}\t${s.workspace}\t${s.task}\t${s.grants.join(' ')}\texpires ${s.expires_at}`)
        return 0
      }
      if (action === 'show') {
        const shown = await here.show(id as string)
        if (values.json === true) write(io.stdout, JSON.stringify(shown))
        else write(io.stdout, showLines(shown))
        return 0
      }
      await here.revoke(id as string)
      write(io.stdout, `revoked ${id}`)
      return 0
    } finally {
      await runtime?.close()
    }
  },
}

type CreateValues = SessionOptionValues & { readonly 'ca-file'?: string }

/** What the three actions need, here (the local database) or there (an admin API). */
interface SessionPlace {
  create(values: CreateValues): Promise<{ session: SessionView; key: string; env: readonly EnvLine[] }>
  list(): Promise<SessionView[]>
  show(id: string): Promise<SessionDetail>
  revoke(id: string): Promise<void>
}

function localSessions(runtime: Runtime): SessionPlace {
  return {
    async create(values) {
      const { session: created, key } = await createSession(runtime, values)
      return { session: view(created, Date.now()), key, env: sandboxEnv(runtime.config, key, values['ca-file']) }
    },
    async list() {
      const now = Date.now()
      return (await runtime.sessions.list()).map((s) => view(s, now))
    },
    async show(id) {
      const found = await runtime.store.sessions.get(id)
      if (found === undefined) throw new OperatorError(`no session ${id}`)
      const now = Date.now()
      return { ...view(found, now), budgets: await new Budgets(runtime.store.counters, runtime.config.budgets).report(found, now) }
    },
    async revoke(id) {
      if (!(await runtime.sessions.revoke(id))) throw new OperatorError(`no session ${id}`)
    },
  }
}

/** The most sessions `list --server` fetches (pages of 500). */
const MAX_REMOTE_PAGES = 200

function remoteSessions(admin: AdminClient): SessionPlace {
  return {
    async create(values) {
      const { agent, user, workspace, task, grant, ttl, budget } = values
      return admin.call('session.create', { body: { agent, user, workspace, task, grant, ttl, budget, ...(values['ca-file'] === undefined ? {} : { ca_file: values['ca-file'] }) } })
    },
    async list() {
      const all: SessionView[] = []
      let cursor: string | undefined
      for (let page = 0; page < MAX_REMOTE_PAGES; page++) {
        const { sessions, next_cursor: next } = await admin.call('session.list', { query: { limit: 500, ...(cursor === undefined ? {} : { cursor }) } })
        all.push(...sessions)
        if (next === null) return all
        cursor = next
      }
      throw new OperatorError(`more than ${MAX_REMOTE_PAGES * 500} sessions`, 'list them through the admin API with filters (GET /v1/sessions?agent=…)')
    },
    async show(id) {
      return admin.call('session.get', { params: { id } })
    },
    async revoke(id) {
      await admin.call('session.revoke', { params: { id } })
    },
  }
}

/** The session flags of `session create` (and `run`) → a new session and its task key. */
export async function createSession(runtime: Runtime, flags: SessionOptionValues) {
  return runtime.sessions.create(readSessionOptions(flags, runtime.config.policy))
}

/** `session show`: the session, then one line per budget limit: used, limit, left, and when its window resets. */
function showLines(s: SessionDetail): string {
  const head = `${s.id}\t${s.state}\t${s.agent}\t${s.user}\t${s.workspace}\t${s.task}\t${s.grants.join(' ')}\texpires ${s.expires_at}`
  if (s.budgets.length === 0) return `${head}\nno budgets apply`
  const scope = (b: SessionDetail['budgets'][number]): string => `per ${b.per}${b.connector === null ? '' : ` on ${b.connector}${b.rule === null ? '' : `/${b.rule}`}`}`
  return [head, ...s.budgets.map((b) => `budget ${b.budget} (${scope(b)})\t${b.metric}\tused ${b.used} of ${b.limit}, ${b.left} left${b.resets_at === null ? '' : `, resets ${b.resets_at}`}`)].join('\n')
}
