import type { Config } from '../config/load.ts'
import { OperatorError } from '../errors.ts'

/** One line of a sandbox's environment: a variable, or a comment for the operator who reads it. */
export type EnvLine = { readonly name: string; readonly value: string } | { readonly comment: string }

const KNOWN: Record<string, readonly [urlVar: string, keyVar: string]> = {
  openai: ['OPENAI_BASE_URL', 'OPENAI_API_KEY'],
  anthropic: ['ANTHROPIC_BASE_URL', 'ANTHROPIC_API_KEY'],
  github: ['GITHUB_API_URL', 'GITHUB_TOKEN'],
}

/** Every variable that names the CA bundle: the first four replace a tool's trust store, NODE_EXTRA_CA_CERTS adds to Node's. */
const TRUST_VARIABLES = ['SSL_CERT_FILE', 'REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE', 'GIT_SSL_CAINFO', 'NODE_EXTRA_CA_CERTS'] as const

/**
 * The environment a sandbox needs. With a forward listener: the proxy variables (task key as the
 * proxy password), the CA bundle (keyvalet's CA and the usual public ones: `keyvalet ca bundle`)
 * in every common trust variable, and the placeholders SDKs insist on — unmodified tools then just
 * work. NO_PROXY exempts exactly one host, listen.gateway_url's, and only when it is configured
 * (a name of its own for the gateway); it is always set, so that an inherited value cannot exempt
 * more. Gateway only: base URLs through keyvalet, the task key as the API key.
 */
export function sandboxEnv(config: Config, key: string, caFile = './keyvalet-ca-bundle.pem'): EnvLine[] {
  const gateway = origin(config.gatewayUrl) ?? listenerUrl(config.gateway)
  const lines: EnvLine[] = [{ name: 'KEYVALET_TASK_KEY', value: key }]
  if (config.forward !== undefined) {
    const at = new URL(origin(config.forwardUrl) ?? listenerUrl(config.forward))
    at.username = 'task'
    at.password = key
    const proxy = origin(at) ?? ''
    const exempt = config.gatewayUrl?.hostname.replace(/^\[(.*)\]$/, '$1') ?? ''
    if (exempt !== '') lines.push({ name: 'KEYVALET_GATEWAY', value: gateway })
    lines.push(...['HTTPS_PROXY', 'HTTP_PROXY', 'https_proxy', 'http_proxy'].map((name) => ({ name, value: proxy })))
    lines.push(
      { comment: exempt === '' ? 'nothing bypasses the proxy (listen.gateway_url gives the gateway a name of its own to reach it directly)' : 'only the gateway bypasses the proxy' },
      { name: 'NO_PROXY', value: exempt }, { name: 'no_proxy', value: exempt }, { name: 'NODE_USE_ENV_PROXY', value: '1' },
      { comment: `keyvalet's CA with the public CAs, written by: keyvalet ca bundle --out ${caFile}` },
      ...TRUST_VARIABLES.map((name) => ({ name, value: caFile })),
    )
    for (const connector of config.policy.connectors.values()) {
      if (connector.placeholder === undefined) continue
      lines.push({ name: KNOWN[connector.name]?.[1] ?? `${connector.name.toUpperCase().replaceAll('-', '_')}_API_KEY`, value: connector.placeholder })
    }
    return lines
  }
  lines.push({ name: 'KEYVALET_GATEWAY', value: gateway })
  for (const name of config.policy.connectors.keys()) lines.push({ name: `KEYVALET_${name.toUpperCase().replaceAll('-', '_')}_URL`, value: `${gateway}/${name}` })
  for (const [name, [urlVar, keyVar]] of Object.entries(KNOWN)) {
    if (config.policy.connectors.has(name)) lines.push({ name: urlVar, value: `${gateway}/${name}` }, { name: keyVar, value: key })
  }
  return lines
}

/** `export NAME='value'` lines for a POSIX shell to `eval` or `.`; comments as `#` lines. */
export function shellLines(lines: readonly EnvLine[]): string {
  return lines.map((l) => ('comment' in l ? `# ${l.comment}` : `export ${l.name}=${shellQuote(l.value)}`)).join('\n')
}

/** `NAME=value` lines, as docker --env-file, kubectl --from-env-file and systemd's EnvironmentFile read them (no quoting). */
export function dotenvLines(lines: readonly EnvLine[]): string {
  return lines.map((l) => {
    if ('comment' in l) return `# ${l.comment}`
    if (/[\r\n]/.test(l.value)) throw new OperatorError(`${l.name} holds a line break, which NAME=value lines cannot carry`, 'use --env (shell quoting), or change the value in the configuration')
    return `${l.name}=${l.value}`
  }).join('\n')
}

function shellQuote(value: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`
}

/** `http://host:port` without a trailing slash. */
function origin(url: URL | undefined): string | undefined {
  return url?.href.replace(/\/$/, '')
}

/** A listener's address as a URL; a wildcard address means "this machine" to a local sandbox. */
function listenerUrl(at: { host: string; port: number }): string {
  const host = at.host === '0.0.0.0' || at.host === '::' ? '127.0.0.1' : at.host
  return `http://${host.includes(':') ? `[${host}]` : host}:${at.port}`
}
