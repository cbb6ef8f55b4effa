import { spawn } from 'node:child_process'
import { loadConfig, type Config } from '../../config/load.ts'
import { createPkce, createState } from '../../credentials/oauth/pkce.ts'
import { requestToken, TokenEndpointError } from '../../credentials/oauth/token-endpoint.ts'
import { connectorOfTokenName, parseUserToken, recordFromGrant, userTokenName, writeUserToken } from '../../credentials/oauth/user-tokens.ts'
import type { OAuthUserOptions } from '../../credentials/sources/oauth-user.ts'
import { TokenHttp } from '../../credentials/token-http.ts'
import { Resolver } from '../../egress/resolver.ts'
import { OperatorError } from '../../errors.ts'
import type { Connector } from '../../model/policy.ts'
import { openRuntime, type Runtime } from '../../runtime.ts'
import { unopenable } from '../../vault/vault.ts'
import { parseDuration } from '../../duration.ts'
import { CONFIG_OPTION, configPath, parse, write } from '../args.ts'
import type { Command, Io } from '../command.ts'
import { startCallbackServer } from '../oauth-callback.ts'

const help = `usage: keyvalet oauth <connect|status|disconnect> [options]

  connect --connector C --user U [--port P] [--timeout 5m] [--no-open]
         connect user U's account for the oauth_user connector C, once: keyvalet listens on
         http://127.0.0.1:P/callback (P random unless given), prints the authorization URL (and
         opens a browser unless --no-open), waits for the redirect, checks its state, exchanges
         the code (PKCE S256) and stores the tokens in the vault. Tokens are never printed.
  status [--connector C] [--json]
         which users are connected to which connector, with expiry and scope (no tokens)
  disconnect --connector C --user U
         delete user U's tokens for C: their next request through C is refused (not connected)

U is the user id sessions are minted with (keyvalet session create --user U).`

export const oauth: Command = {
  name: 'oauth',
  help,
  async run(args, io) {
    const { values, positionals } = parse(args, {
      ...CONFIG_OPTION, connector: { type: 'string' }, user: { type: 'string' }, port: { type: 'string' },
      timeout: { type: 'string' }, 'no-open': { type: 'boolean' }, json: { type: 'boolean' },
    }, help)
    const [action] = positionals
    if (action !== 'connect' && action !== 'status' && action !== 'disconnect') {
      throw new OperatorError(`unknown action ${JSON.stringify(action ?? '')}`, 'use: keyvalet oauth connect | status | disconnect')
    }
    const config = loadConfig(configPath(values.config, io))
    const runtime = await openRuntime(config, { env: io.env, createMasterKey: action === 'connect' })
    try {
      if (action === 'status') return await status(runtime, values.connector, values.json === true, io)
      const connector = oauthConnector(config, required(values.connector, 'connector'))
      const user = required(values.user, 'user')
      if (action === 'disconnect') {
        if (!(await runtime.vault.delete(userTokenName(connector.name, user)))) throw new OperatorError(`user ${JSON.stringify(user)} is not connected to ${connector.name}`)
        write(io.stdout, `disconnected user ${JSON.stringify(user)} from ${connector.name}`)
        return 0
      }
      const port = values.port === undefined ? 0 : Number(values.port)
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new OperatorError(`--port must be 0-65535, got ${JSON.stringify(values.port)}`)
      await connect(runtime, connector, user, { port, timeoutMs: parseDuration(values.timeout ?? '5m'), open: values['no-open'] !== true }, io)
      return 0
    } finally {
      await runtime.close()
    }
  },
}

interface ConnectOptions { readonly port: number; readonly timeoutMs: number; readonly open: boolean }

/** The authorization-code flow with PKCE (S256) and state for one user, once. */
async function connect(runtime: Runtime, connector: Connector, user: string, opts: ConnectOptions, io: Io): Promise<void> {
  const options = connector.credential?.source.options as OAuthUserOptions
  // Read before the browser opens, so a missing client secret fails first.
  const clientSecret = options.clientSecret === undefined ? undefined : await readClientSecret(runtime, options.clientSecret)
  const pkce = createPkce()
  const state = createState()
  const callback = await startCallbackServer({ port: opts.port, state, onIgnored: (why) => write(io.stderr, `warning: ${why}`) }).catch((err: unknown) => {
    throw new OperatorError(`cannot listen on 127.0.0.1:${opts.port} for the callback (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'choose another --port, or leave it out for a random one')
  })
  let timer: NodeJS.Timeout | undefined
  try {
    const url = new URL(options.authorizeUrl)
    const params = { response_type: 'code', client_id: options.clientId, redirect_uri: callback.redirectUri, state, code_challenge: pkce.challenge, code_challenge_method: 'S256' }
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v)
    if (options.scopes.length > 0) url.searchParams.set('scope', options.scopes.join(' '))
    write(io.stdout, `Open this URL in a browser and sign in as ${JSON.stringify(user)} to connect their ${connector.name} account:\n\n  ${url.href}\n\nWaiting for the redirect to ${callback.redirectUri} ...`)
    if (opts.open) openBrowser(url.href)
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new OperatorError(`no redirect within ${Math.round(opts.timeoutMs / 1000)} s`, 'run the command again, or give a longer --timeout')), opts.timeoutMs)
    })
    const result = await Promise.race([callback.result, timeout])
    if ('error' in result) throw new OperatorError(`the authorization server did not grant access: ${result.error}`)
    const issuedAt = Date.now()
    const http = new TokenHttp({ resolver: new Resolver(runtime.config.dnsServers === undefined ? {} : { servers: runtime.config.dnsServers }), upstreamProxy: runtime.config.upstreamProxy, vault: runtime.vault })
    try {
      const granted = await requestToken(http, connector, options.tokenUrl, {
        grant_type: 'authorization_code', code: result.code, redirect_uri: callback.redirectUri, code_verifier: pkce.verifier,
      }, { clientId: options.clientId, clientSecret, method: options.clientAuth })
      const record = recordFromGrant(user, granted, issuedAt)
      await writeUserToken(runtime.vault, connector.name, { ...record, scope: record.scope ?? options.scopes.join(' ') })
      const expires = record.expires_at === undefined ? 'does not expire' : `expires ${new Date(record.expires_at).toISOString()}`
      write(io.stdout, `connected user ${JSON.stringify(user)} to ${connector.name}: scopes ${record.scope ?? (options.scopes.join(' ') || '(none)')}; access token ${expires}; ${record.refresh_token === undefined ? 'no refresh token (the user connects again when it expires)' : 'refresh token stored'}`)
    } catch (err) {
      if (!(err instanceof TokenEndpointError)) throw err
      throw new OperatorError(`the token endpoint refused the code exchange: ${err.message}`, err.oauthError === 'invalid_client' ? 'check client_id and the client secret' : undefined)
    } finally {
      await http.close()
    }
  } finally {
    clearTimeout(timer)
    await callback.close()
  }
}

/** Missing: say how to set it; unopenable (another master key, tampered): say why. */
async function readClientSecret(runtime: Runtime, name: string): Promise<string> {
  const value = await runtime.vault.openOptional(name).catch((err: unknown) => {
    throw unopenable(err, `the client secret ${name}`, 'use the master key that created this data folder (KEYVALET_MASTER_KEY or KEYVALET_MASTER_KEY_FILE)')
  })
  if (value === undefined) throw new OperatorError(`the client secret ${name} is not in the vault`, `keyvalet secret set ${name}`)
  return value.toString('utf8')
}

async function status(runtime: Runtime, only: string | undefined, json: boolean, io: Io): Promise<number> {
  const rows = []
  for (const { name } of await runtime.vault.list()) {
    const connector = connectorOfTokenName(name)
    if (connector === undefined || (only !== undefined && connector !== only)) continue
    const record = await runtime.vault.open(name).then(parseUserToken, () => undefined)
    rows.push({
      connector, user: record?.user ?? '(unreadable record)', secret: name,
      expires_at: record?.expires_at === undefined ? null : new Date(record.expires_at).toISOString(),
      expired: record?.expires_at !== undefined && record.expires_at <= Date.now(),
      refresh_token: record?.refresh_token !== undefined, scope: record?.scope ?? '',
      updated_at: record === undefined ? null : new Date(record.updated_at).toISOString(),
    })
  }
  if (json) write(io.stdout, JSON.stringify(rows))
  else if (rows.length === 0) write(io.stdout, 'no users connected')
  else for (const r of rows) write(io.stdout, `${r.connector}\t${JSON.stringify(r.user)}\t${r.expires_at === null ? 'no expiry' : `${r.expired ? 'expired' : 'expires'} ${r.expires_at}`}\trefresh token: ${r.refresh_token ? 'yes' : 'no'}\tscope: ${r.scope}`)
  return 0
}

function oauthConnector(config: Config, name: string): Connector {
  const connector = config.policy.connectors.get(name)
  if (connector === undefined) throw new OperatorError(`no connector named ${name} in ${config.file}`)
  if (connector.credential?.source.type !== 'oauth_user') throw new OperatorError(`connector ${name} does not use credential source oauth_user`)
  return connector
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new OperatorError(`--${flag} is required`)
  return value
}

/** Best effort: the URL is printed anyway. No shell is involved, so the URL cannot inject a command. */
function openBrowser(url: string): void {
  const command = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? undefined : 'xdg-open'
  if (command === undefined) return
  const child = spawn(command, [url], { stdio: 'ignore', detached: true })
  child.on('error', () => {})
  child.unref()
}
