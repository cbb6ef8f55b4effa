/** The `mcp` block of a connector: its schema (merged into config/connector-schema.ts) and its compile step. */

import { APPROVAL_BLOCK, compileApproval } from '../approvals/config.ts'
import Type, { type Static } from 'typebox'
import type { FieldPath } from '../schema-kit/field-path.ts'
import { RULE_ID } from '../schema-kit/patterns.ts'
import { Defaulted, NamedMap } from '../schema-kit/builders.ts'
import { compileJsonSchema } from '../schema-kit/json-schema.ts'
import { compilePathPattern } from '../policy/path-pattern.ts'
import type { McpPolicy, McpRule, MethodRule, NameMatcher, PathMatcher } from '../model/policy.ts'

/** Methods decided by their own rules (tools, prompts, resources): not configurable under `methods`. */
export const ITEM_METHODS: ReadonlySet<string> = new Set(['tools/call', 'prompts/get', 'resources/read', 'resources/subscribe', 'resources/unsubscribe'])

/**
 * The other methods a client sends, and what each needs by default. The session's own protocol
 * (initialize, ping, the client's notifications, listing) is `read`: any grant on the connector
 * covers it. completion/complete is refused: it reads argument values of prompts and resources
 * past their rules. A method listed nowhere is refused.
 */
export const DEFAULT_METHODS: ReadonlyMap<string, MethodRule> = new Map<string, MethodRule>([
  ['initialize', 'read'], ['ping', 'read'],
  ['notifications/initialized', 'read'], ['notifications/cancelled', 'read'], ['notifications/progress', 'read'], ['notifications/roots/list_changed', 'read'],
  ['tools/list', 'read'], ['prompts/list', 'read'], ['resources/list', 'read'], ['resources/templates/list', 'read'],
  ['logging/setLevel', 'read'], ['completion/complete', 'deny'],
])

const SEVERITY = Type.Enum(['read', 'write', 'admin'], { description: 'The severity a grant must cover (read < write < admin).' })
const RULE_ID_FIELD = Type.String({
  pattern: RULE_ID,
  errorMessage: 'must be lower-case letters, digits, ".", "_" or "-", starting with a letter or digit (at most 63)',
  description: "Unique within the connector (with its HTTP rules' ids). Appears in audit records and can be named in grants.",
})
const ARGUMENTS = Type.Optional(Type.Unsafe<Record<string, unknown>>(Type.Object({}, {
  description: 'A JSON Schema (draft 2020-12, the subset docs/config.md lists) the `arguments` object must satisfy (`{}` when the call has none). Without it, any arguments pass.',
})))

const namedRule = (what: string) => Type.Object({
  id: RULE_ID_FIELD,
  name: Type.String({ minLength: 1, maxLength: 256, description: `The ${what} name, exactly, or a pattern where each \`*\` stands for any run of characters (\`delete_*\`).` }),
  severity: SEVERITY,
  arguments: ARGUMENTS,
  approval: Type.Optional(APPROVAL_BLOCK),
}, { additionalProperties: false, description: `A ${what} this connector lets a task use.` })

export const MCP_BLOCK = Type.Object({
  endpoint: Defaulted(Type.String({
    default: '/',
    description: "The path of the server's MCP endpoint below the connector (a path pattern, as a rule's `path`), default `/` (the upstream URL itself). Requests there are decided by this block; other paths by the connector's rules.",
  })),
  trust_annotations: Defaulted(Type.Boolean({
    default: false,
    description: "When true, a tool no rule names takes its severity from the annotations the server gave it in tools/list (readOnlyHint: read; destructiveHint, which MCP presumes true: admin; destructiveHint false: write). Only for a server you trust to describe its tools truthfully. When false, such a tool is refused and hidden.",
  })),
  tools: Defaulted(Type.Array(namedRule('tool'), { default: [], description: 'The tools a task may call (tools/call) and see (tools/list), tried in order.' })),
  prompts: Defaulted(Type.Array(namedRule('prompt'), { default: [], description: 'The prompts a task may get (prompts/get) and see (prompts/list).' })),
  resources: Defaulted(Type.Array(Type.Object({
    id: RULE_ID_FIELD,
    uri: Type.String({ minLength: 1, maxLength: 2048, description: 'The resource URI, exactly, or a pattern where `*` stands for any run of characters but `/` and `**` for any run at all (`file:///docs/**`).' }),
    severity: SEVERITY,
  }, { additionalProperties: false, description: 'Resources a task may read, subscribe to and see (resources/list).' }), { default: [], description: 'The resources a task may use, by URI.' })),
  methods: Defaulted(NamedMap(Type.Enum(['read', 'write', 'admin', 'deny']), {
    default: {},
    propertyNames: { minLength: 1, maxLength: 128 },
    description: `Other JSON-RPC methods: the severity a grant must cover, or deny. Defaults: ${[...DEFAULT_METHODS].map(([m, r]) => `${m} ${r}`).join(', ')}; any other method is refused. A JSON-RPC response (the client answering the server) is allowed.`,
  })),
}, {
  additionalProperties: false,
  description: 'The upstream is an MCP server (Streamable HTTP transport). Each JSON-RPC message sent to its endpoint is decided before anything is forwarded: tools/call on the tool name and arguments, prompts/get and resources/* on theirs, other methods by `methods`; a batch is refused whole if any message in it is. Lists the server returns show only what the task may use. Refusals come back as JSON-RPC errors. See docs/mcp.md.',
})

export type McpFile = Static<typeof MCP_BLOCK>

/** `taken`: the connector's HTTP rule ids, which MCP rule ids may not repeat. */
export function compileMcp(raw: McpFile, taken: ReadonlySet<string>, idleTimeoutMs: number, problem: (f: FieldPath, m: string) => void): McpPolicy {
  const ids = new Set(taken)
  const id = (value: string, at: FieldPath): void => {
    if (ids.has(value)) problem(at, `duplicate rule id ${value} (rule ids are unique within a connector, HTTP and MCP rules together)`)
    ids.add(value)
  }
  let endpoint: PathMatcher | undefined
  try {
    endpoint = compilePathPattern(raw.endpoint)
  } catch (err) {
    problem(['endpoint'], (err as Error).message)
  }
  const named = (list: McpFile['tools'], field: string): McpRule[] => list.map((r, i) => {
    id(r.id, [field, i, 'id'])
    const args = r.arguments === undefined ? undefined : compileJsonSchema(r.arguments, (f, m) => problem([field, i, 'arguments', ...f], m))
    const approval = r.approval === undefined ? undefined : compileApproval(r.approval, idleTimeoutMs, (f, m) => problem([field, i, 'approval', ...f], m))
    return { id: r.id, match: namePattern(r.name, false), severity: r.severity, arguments: args, ...(approval === undefined ? {} : { approval }) }
  })
  const tools = named(raw.tools, 'tools')
  const prompts = named(raw.prompts, 'prompts')
  const resources = raw.resources.map((r, i): McpRule => {
    id(r.id, ['resources', i, 'id'])
    return { id: r.id, match: namePattern(r.uri, true), severity: r.severity, arguments: undefined }
  })
  const methods = new Map(DEFAULT_METHODS)
  for (const [method, rule] of Object.entries(raw.methods)) {
    if (ITEM_METHODS.has(method)) problem(['methods', method], `${method} is decided by the ${method.split('/')[0]} rules, not here`)
    methods.set(method, rule as MethodRule)
  }
  return { endpoints: endpoint === undefined ? [] : [endpoint], trustAnnotations: raw.trust_annotations, tools, prompts, resources, methods }
}

/**
 * `*` stands for any run of characters (for a URI, any run without `/`, and `**` any run at all);
 * everything else is literal. A pattern without one is compared as a string.
 */
export function namePattern(source: string, uri: boolean): NameMatcher {
  if (!source.includes('*')) return { source, match: (name) => name === source }
  const body = source.split(/(\*\*?)/).map((part) => {
    if (part === '**') return '.*'
    if (part === '*') return uri ? '[^/]*' : '.*'
    return part.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
  }).join('')
  const re = new RegExp(`^(?:${body})$`, 'su')
  return { source, match: (name) => re.test(name) }
}
