/**
 * Generates docs/config.md, the configuration reference, from CONFIG_SCHEMA (src/config/schema.ts),
 * so the reference cannot drift from what the loader accepts. The semantic checks and warnings
 * below are prose kept next to the code they describe: src/config/compile.ts, load.ts, check.ts.
 *
 *   node scripts/config-docs.ts           writes docs/config.md
 *   node scripts/config-docs.ts --check   exits 1 when docs/config.md is stale
 */

import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { CONFIG_SCHEMA } from '../src/config/schema.ts'

export const DOCS_FILE = fileURLToPath(new URL('../docs/config.md', import.meta.url))

/** The subset of JSON Schema that CONFIG_SCHEMA uses. */
interface Node {
  readonly type?: string
  readonly description?: string
  readonly properties?: Readonly<Record<string, Node>>
  readonly required?: readonly string[]
  readonly additionalProperties?: boolean | Node
  readonly propertyNames?: Node
  readonly items?: Node
  readonly anyOf?: readonly Node[]
  readonly enum?: readonly unknown[]
  readonly const?: unknown
  readonly default?: unknown
  readonly pattern?: string
  readonly minimum?: number
  readonly maximum?: number
  readonly minLength?: number
  readonly maxLength?: number
  readonly minItems?: number
  readonly uniqueItems?: boolean
}

const INTRO = `keyvalet reads one YAML file, named by \`--config\`, \`$KEYVALET_CONFIG\` or \`./keyvalet.yaml\`;
[examples/keyvalet.yaml](../examples/keyvalet.yaml) is a working example. The file is validated
once, at load: YAML syntax, then the structure below (an unknown field is an error), then the
semantic checks listed at the end. Every error names the file, the line and the field, e.g.
\`keyvalet.yaml:14: connectors.github.rules[0].severity: must be one of read, write, admin\`
(up to 10 at once). Relative paths (\`data_dir\`, \`ca_file\`) are relative to the folder of the
configuration file. No secret is ever in this file: credentials live in keyvalet's encrypted
vault (\`keyvalet secret set <name>\`), and the master key comes from \`$KEYVALET_MASTER_KEY\`,
the file named by \`$KEYVALET_MASTER_KEY_FILE\`, or \`<data_dir>/master.key\`.`

const SEMANTIC_CHECKS = [
  '`listen.gateway` and `listen.forward` are `host:port` with a port from 0 to 65535, `tunnels` entries `host:port` with a port from 1; an IPv6 host is bracketed, as in `[::1]:8787`.',
  'Every host (in `listen`, `tunnels`, and the URLs keyvalet dials: `upstream`, `upstream_proxy.url`, token and API endpoints) is a DNS name or a canonical IP address: `127.1`, `0x7f000001` or `0177.0.0.1` are refused rather than read as 127.0.0.1.',
  'Every `allow_addresses` entry is a CIDR `address/prefix` with a prefix within its family (0-32, 0-128) and no host bits set (`10.1.2.3/8` is refused: `10.0.0.0/8` was meant). A single address is `/32` or `/128`.',
  '`dns.servers` entries are an IP address, `ip:port` or `[ipv6]:port`.',
  '`sessions.max_ttl` is longer than 0 and at most 365d.',
  '`upstream` is an absolute `https://` URL, or `http://` only with `allow_insecure: true`; it has no user info, query, fragment, dot segments or backslashes, and its base path is unambiguous (no encoded separators or empty segments).',
  '`ca_file` can be read and holds at least one PEM certificate, all of them valid.',
  'The credential fields match `inject`: `basic` needs `username`, `header` needs `header`, `query` needs `param`; `username`, `header`, `template` and `param` are refused with any other `inject`.',
  'For `inject: header`: `header` is not `Host`, `Content-Length` or a hop-by-hop header (`Connection`, `Keep-Alive`, `Proxy-Authenticate`, `Proxy-Authorization`, `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`); `template` (default `{secret}`) contains `{secret}` exactly once and no control characters.',
  'Rule ids are unique within a connector.',
  'No rule lists `CONNECT` or `TRACE`.',
  "`path` (each of them, when a list) is a valid path pattern: it starts with `/`; `*` and `:name` (`name` matching `[A-Za-z_][A-Za-z0-9_]*`) are whole segments; `**` only as the last segment; no empty segment except a trailing `/`; no `.` or `..` segment; a literal segment must be canonical, as a request's segment must be ([security.md](security.md#canonical-paths)), since any other literal could never match (so not `%2F`, `%2E`, `%25`, `%5C`, `%3B`, an escaped letter or digit, a trailing dot or space).",
  'Every query and header `pattern` compiles as a JavaScript regular expression in unicode mode, on its own (so it cannot escape the `^(?:...)$` anchoring).',
  'No header is constrained twice: header names are case-insensitive, so `Accept` and `accept` clash.',
  '`body` (and an MCP rule\'s `arguments`) is a valid JSON Schema: it passes the draft 2020-12 meta-schema, compiles, and uses only the keywords keyvalet enforces (`src/schema-kit/json-schema.ts`): the applicators (`allOf`, `anyOf`, `oneOf`, `not`, `if`/`then`/`else`, `properties`, `patternProperties`, `additionalProperties`, `propertyNames`, `dependentSchemas`, `items`, `prefixItems`, `contains`, `unevaluatedItems`, `unevaluatedProperties`), the assertions (`type`, `enum`, `const`, `multipleOf`, `maximum`, `exclusiveMaximum`, `minimum`, `exclusiveMinimum`, `maxLength`, `minLength`, `pattern`, `maxItems`, `minItems`, `uniqueItems`, `maxContains`, `minContains`, `maxProperties`, `minProperties`, `required`, `dependentRequired`, `format` with a format keyvalet checks: date, date-time, duration, email, hostname, ipv4, ipv6, uri, uri-reference, uri-template, url, uuid and the others the message lists), `$ref` inside the same schema (`#/$defs/name`, `#/definitions/name`), and the annotations `$schema` (2020-12 only), `$comment`, `title`, `description`, `default`, `examples`, `deprecated`, `readOnly`, `writeOnly`. Any other keyword (a misspelling, draft-07 `dependencies`, `$id`, `$dynamicRef`, `contentMediaType`...) is refused: JSON Schema would silently ignore it, and the rule would allow more than it says.',
  '`allow_body: false` is not set beside a `body` schema (a rule with a schema takes a body).',
  "Every `approval.timeout` (of a rule, a connector, an MCP tool or prompt rule, a budget) is at least 1s, at most 1h, and shorter than `limits.idle_timeout_ms`, which would close the waiting connection first.",
  'No request of an `aws_sigv4` connector needs approval: the signature keyvalet makes after the yes rewrites headers the approval covers.',
  '`approvals.webhook.url` and `approvals.webhook.admin_url` are `http://` or `https://` URLs without user info.',
]

const WARNINGS = [
  'An `http://` upstream: the credential and all traffic cross the network unencrypted (noted as typical for tests when the host is loopback).',
  'A connector without a `credential`: its requests go out with none.',
  'A connector without rules (and without `mcp`): it refuses everything.',
  'An MCP connector with `trust_annotations: true`: a tool no rule names gets the severity the server claims for it.',
  'A rule whose `path` has a wildcard (`*`, `:name` or `**`) in one of its first two segments: for an API like GitHub\'s that can mean every repository of every organisation.',
  'A `write` or `admin` rule that allows `POST`, `PUT` or `PATCH` (or, with `allow_body`, any of its methods) without a `body` schema.',
  'A vault secret the configuration names (`credential.secret`, an OAuth `client_secret`, an `upstream_proxy.secret`) that the vault does not hold: `check` lists them when the data folder has a database (names only, no master key needed), and `start` names them.',
]

const NOTES = [
  'A `path` ending in `/**` whose rule does not also list the prefix: `/a/**` matches the paths below `/a/` (`/a/b`, `/a/b/c/`), never `/a` or `/a/` itself; `path: [/a, /a/**]` allows both.',
]

export function renderConfigDocs(): string {
  const out: string[] = [
    '# Configuration reference',
    '',
    '<!-- Generated from src/config/schema.ts by scripts/config-docs.ts: do not edit, run `npm run docs`. -->',
    '',
    INTRO,
    '',
  ]
  section(out, undefined, CONFIG_SCHEMA as unknown as Node)
  out.push('## Semantic checks', '', 'Beyond the structure above, loading refuses a file that breaks any of these rules:', '', ...SEMANTIC_CHECKS.map((c) => `- ${c}`), '')
  out.push(
    '## Warnings',
    '',
    'Legal but dangerous choices are reported as warnings, located like errors, by `keyvalet check` (which exits 1 on them with `--strict`); `keyvalet start` counts them in one line that points at `check`:',
    '',
    ...WARNINGS.map((w) => `- ${w}`),
    '',
    '## Notes',
    '',
    '`keyvalet check` also prints notes on how some rules read; they are not warnings and never fail `--strict`:',
    '',
    ...NOTES.map((n) => `- ${n}`),
  )
  return out.join('\n') + '\n'
}

/** One section per object level, then its child objects, depth first: the order of the file. */
function section(out: string[], path: string | undefined, node: Node): void {
  out.push(`## ${path === undefined ? 'Top level' : code(path)}`, '')
  if (node.description !== undefined) out.push(text(node.description), '')
  const fields = Object.entries(node.properties ?? {})
  if (fields.length === 0) {
    out.push('Free-form: any keys (see the semantic checks below).', '')
    return
  }
  out.push('| field | type | required | default | description |', '| --- | --- | --- | --- | --- |')
  const children: [string, Node][] = []
  for (const [name, field] of fields) {
    const child = childOf(field)
    const childPath = child === undefined ? undefined : (path === undefined ? name : `${path}.${name}`) + child.suffix
    if (child !== undefined) children.push([childPath as string, child.node])
    const required = node.required?.includes(name) === true ? 'yes' : 'no'
    // An empty object's default ({}) says only that its fields take theirs: shown on those fields.
    const shown = field.default === undefined || (field.type === 'object' && JSON.stringify(field.default) === '{}') ? undefined : field.default
    const fallback = shown === undefined ? '' : code(JSON.stringify(shown))
    out.push(`| ${code(name)} | ${typeOf(field, childPath)} | ${required} | ${fallback} | ${text(field.description ?? '')} |`)
  }
  out.push('')
  for (const [childPath, child] of children) section(out, childPath, child)
}

/** The object a field leads to, if any, and how its section's path extends the field's. */
function childOf(field: Node): { node: Node; suffix: string } | undefined {
  if (field.type === 'array' && field.items?.type === 'object') return { node: field.items, suffix: '[]' }
  const objectForm = field.type === 'array' ? field.items?.anyOf?.find((n) => n.type === 'object') : undefined
  if (objectForm !== undefined) return { node: objectForm, suffix: '[]' }
  if (typeof field.additionalProperties === 'object') return field.additionalProperties.type === 'object' ? { node: field.additionalProperties, suffix: '.<name>' } : undefined
  if (field.type === 'object') return { node: field, suffix: '' }
  return undefined
}

function typeOf(node: Node, childPath?: string): string {
  if (node.const !== undefined) return `must be ${code(JSON.stringify(node.const))}`
  if (node.enum !== undefined) return `one of ${node.enum.map((v) => code(String(v))).join(', ')}`
  const link = childPath === undefined ? '' : ` ([${code(childPath)}](#${slug(code(childPath))}))`
  if (node.anyOf !== undefined && node.type === undefined) return node.anyOf.map((n) => (n.type === 'object' ? 'object' : typeOf(n))).join(' or ') + link
  if (node.type === 'array') {
    const items = node.items === undefined ? 'any'
      : node.items.anyOf !== undefined ? node.items.anyOf.map((n) => (n.type === 'object' ? 'object' : typeOf(n))).join(' or ')
      : node.items.type === 'object' ? 'object' : typeOf(node.items)
    const count = facts(node)
    return `array of ${items}${count.length === 0 ? '' : `; ${count.join(', ')}`}${link}`
  }
  if (typeof node.additionalProperties === 'object') {
    const names = node.propertyNames === undefined ? [] : facts(node.propertyNames)
    const values = node.additionalProperties.type === 'object' ? '' : ` of ${typeOf(node.additionalProperties)}`
    return `map${names.length === 0 ? '' : ` (names: ${names.join(', ')})`}${values}${link}`
  }
  return [node.type ?? 'any', ...facts(node)].join(', ') + link
}

function facts(node: Node): string[] {
  const out: string[] = []
  if (node.pattern !== undefined) out.push(`matches ${code(node.pattern)}`)
  if (node.minimum !== undefined) out.push(`≥ ${node.minimum}`)
  if (node.maximum !== undefined) out.push(`≤ ${node.maximum}`)
  if (node.minLength !== undefined) out.push(`length ≥ ${node.minLength}`)
  if (node.maxLength !== undefined) out.push(`length ≤ ${node.maxLength}`)
  if (node.minItems !== undefined) out.push(`≥ ${node.minItems} item${node.minItems === 1 ? '' : 's'}`)
  if (node.uniqueItems === true) out.push('unique')
  return out
}

/** A Markdown code span, safe inside a table cell. */
function code(value: string): string {
  const ticks = '`'.repeat(Math.max(0, ...(value.match(/`+/g) ?? []).map((t) => t.length)) + 1)
  const pad = value.startsWith('`') || value.endsWith('`') ? ' ' : ''
  return `${ticks}${pad}${value.replaceAll('|', '\\|')}${pad}${ticks}`
}

/** Prose from a description: `<`, `*` and `|` escaped outside its code spans. */
function text(value: string): string {
  return value
    .split(/(`[^`]*`)/)
    .map((part, i) => (i % 2 === 1 ? part.replaceAll('|', '\\|') : part.replace(/[<*|]/g, (c) => `\\${c}`)))
    .join('')
}

/** GitHub's heading anchor. */
function slug(heading: string): string {
  return heading.toLowerCase().replace(/[^\w\- ]/g, '').replaceAll(' ', '-')
}

if (import.meta.main) {
  const rendered = renderConfigDocs()
  if (process.argv.includes('--check')) {
    let current = ''
    try {
      current = readFileSync(DOCS_FILE, 'utf8')
    } catch {}
    if (current !== rendered) {
      console.error('docs/config.md is stale: run npm run docs')
      process.exit(1)
    }
  } else {
    writeFileSync(DOCS_FILE, rendered)
    console.log(`wrote ${DOCS_FILE}`)
  }
}
