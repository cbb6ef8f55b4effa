import { loadConfig, type Config } from '../../config/load.ts'
import { OperatorError } from '../../errors.ts'
import { checkGrantsAgainstPolicy, formatGrant, parseGrant } from '../../policy/grant.ts'
import { openRuntime, type Runtime } from '../../runtime.ts'
import type { Session } from '../../store/store.ts'
import { CONFIG_OPTION, configPath, parse, parseDuration, write } from '../args.ts'
import type { Command } from '../command.ts'

const help = `usage: keyvalet session <create|list|revoke> [options]

  create --agent A --user U --workspace W --grant CONNECTOR:SEVERITY[:RULE,...] [--grant ...]
         [--ttl 1h] [--task ID] [--env [--ca-file PATH]] [--json]
         mint a task key for one agent session; the key is printed once and stored only as a hash.
         --env prints the environment lines a sandbox needs instead (proxy variables, the CA file
         at PATH in every trust variable, placeholders; or gateway base URLs without a forward proxy).
  list [--json]      every session with its state
  revoke ID          revoke at once: the next request with that key is refused`

export const session: Command = {
  name: 'session',
  summary: 'mint, list and revoke task keys',
  help,
  async run(args, io) {
    const { values, positionals } = parse(args, {
      ...CONFIG_OPTION,
      agent: { type: 'string' }, user: { type: 'string' }, workspace: { type: 'string' }, task: { type: 'string' },
      grant: { type: 'string', multiple: true }, ttl: { type: 'string' }, env: { type: 'boolean' }, json: { type: 'boolean' }, 'ca-file': { type: 'string' },
    }, help)
    const [action, id] = positionals
    const config = loadConfig(configPath(values.config, io))
    const runtime = openRuntime(config, { env: io.env, createMasterKey: false })
    try {
      if (action === 'create') {
        const { session: created, key } = await createSession(runtime, values)
        if (values.env === true) write(io.stdout, sandboxEnv(config, key, values['ca-file']))
        else if (values.json === true) write(io.stdout, JSON.stringify({ ...view(created, Date.now()), key }))
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

/** The flags of `session create` (and `run`) → a new session and its task key. */
export async function createSession(runtime: Runtime, flags: { agent?: string; user?: string; workspace?: string; task?: string; grant?: string[]; ttl?: string }) {
  const grants = (flags.grant ?? []).map(parseGrant)
  if (grants.length === 0) throw new OperatorError('a session needs at least one --grant', 'e.g. --grant github:read')
  const problems = checkGrantsAgainstPolicy(grants, runtime.config.policy)
  if (problems.length > 0) throw new OperatorError(`the grant does not fit the configuration:\n  ${problems.join('\n  ')}`)
  return runtime.sessions.create({
    agent: required(flags.agent, 'agent'), user: required(flags.user, 'user'), workspace: required(flags.workspace, 'workspace'),
    ...(flags.task === undefined ? {} : { task: flags.task }), grants, ttlMs: parseDuration(flags.ttl ?? '1h'),
  })
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new OperatorError(`--${flag} is required`)
  return value
}

function view(s: Session, now: number) {
  const state = s.revokedAt !== undefined ? 'revoked' : now >= s.expiresAt ? 'expired' : 'active'
  return {
    id: s.id, state, agent: s.agent, user: s.user, workspace: s.workspace, task: s.task, grants: s.grants.map(formatGrant),
    created_at: new Date(s.createdAt).toISOString(), expires_at: new Date(s.expiresAt).toISOString(),
    revoked_at: s.revokedAt === undefined ? null : new Date(s.revokedAt).toISOString(),
  }
}

const KNOWN: Record<string, readonly [urlVar: string, keyVar: string]> = {
  openai: ['OPENAI_BASE_URL', 'OPENAI_API_KEY'],
  anthropic: ['ANTHROPIC_BASE_URL', 'ANTHROPIC_API_KEY'],
  github: ['GITHUB_API_URL', 'GITHUB_TOKEN'],
}

/**
 * The environment a sandbox needs. With a forward listener: the proxy variables (task key as the
 * proxy password), keyvalet's CA in every common trust variable, and the placeholders SDKs insist
 * on — unmodified tools then just work. Gateway only: base URLs through keyvalet, the task key as
 * the API key.
 */
export function sandboxEnv(config: Config, key: string, caFile = './keyvalet-ca.pem'): string {
  const url = (at: { host: string; port: number }, user = ''): string => {
    const host = at.host === '0.0.0.0' || at.host === '::' ? '127.0.0.1' : at.host
    return `http://${user}${host.includes(':') ? `[${host}]` : host}:${at.port}`
  }
  const lines = [`KEYVALET_TASK_KEY=${key}`, `KEYVALET_GATEWAY=${url(config.gateway)}`]
  if (config.forward !== undefined) {
    const proxy = url(config.forward, `task:${key}@`)
    // Only the gateway is exempt (by host: curl ignores ports in NO_PROXY), so that SDKs given its
    // base URL reach it directly; everything else goes through the forward proxy.
    const exempt = new URL(url(config.gateway)).hostname
    lines.push(`HTTPS_PROXY=${proxy}`, `HTTP_PROXY=${proxy}`, `https_proxy=${proxy}`, `http_proxy=${proxy}`, `NO_PROXY=${exempt}`, `no_proxy=${exempt}`, 'NODE_USE_ENV_PROXY=1')
    lines.push(`# keyvalet's CA certificate, written with: keyvalet ca export > ${caFile}`)
    for (const name of ['SSL_CERT_FILE', 'NODE_EXTRA_CA_CERTS', 'REQUESTS_CA_BUNDLE', 'GIT_SSL_CAINFO', 'CURL_CA_BUNDLE']) lines.push(`${name}=${caFile}`)
    for (const connector of config.policy.connectors.values()) {
      if (connector.placeholder === undefined) continue
      const known = KNOWN[connector.name]
      lines.push(`${known?.[1] ?? `${connector.name.toUpperCase().replaceAll('-', '_')}_API_KEY`}=${connector.placeholder}`)
    }
    return lines.join('\n')
  }
  for (const name of config.policy.connectors.keys()) lines.push(`KEYVALET_${name.toUpperCase().replaceAll('-', '_')}_URL=${url(config.gateway)}/${name}`)
  for (const [name, [urlVar, keyVar]] of Object.entries(KNOWN)) {
    if (config.policy.connectors.has(name)) lines.push(`${urlVar}=${url(config.gateway)}/${name}`, `${keyVar}=${key}`)
  }
  return lines.join('\n')
}
