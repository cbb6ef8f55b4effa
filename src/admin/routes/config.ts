import Type from 'typebox'
import { RELOADABLE } from '../../config/reload.ts'
import { OperatorError } from '../../errors.ts'
import { parseGrant } from '../../policy/grant.ts'
import type { AdminDeps } from '../deps.ts'
import { explain } from '../../explain/explain.ts'
import { invalid } from '../input.ts'
import { defineRoute } from '../route.ts'

const VERSION = Type.String({ description: 'The configuration version: cfg_ and 16 hex digits of a hash of the canonical configuration; audit records name it (config_version).' })
const CONFIG_VIEW = Type.Object({
  version: VERSION,
  file: Type.String({ description: 'The configuration file keyvalet reads (and reloads).' }),
  pushed: Type.Union([Type.Object({
    seq: Type.Integer({ description: 'Its sequence number (keyvalet config pushed lists them).' }),
    sha256: Type.String({ description: 'SHA-256 of the policy text, hex.' }),
  }), Type.Null()], { description: 'The pushed policy in force over the file (fleet.policy: pushed; docs/deploy.md, "Configuration in a fleet"), or null: the file alone.' }),
  reloadable: Type.Array(Type.String(), { description: 'The fields a reload may change; any other change needs a restart.' }),
  config: Type.Object({}, { additionalProperties: true, description: 'The configuration in force, every default filled in (docs/config.md). It names vault secrets; it never holds a value.' }),
})
const RELOADED = Type.Object({
  result: Type.Union([Type.Literal('applied'), Type.Literal('unchanged')]),
  version: VERSION,
  previous: Type.Optional(VERSION),
  warnings: Type.Array(Type.String(), { description: 'What `keyvalet check` would warn about in the configuration now in force.' }),
})
const EXPLAIN = Type.Object({
  grant: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, maxItems: 50, description: 'The grant to decide under, as a session takes it: connector:severity or connector:severity:rule1,rule2.' }),
  method: Type.String({ pattern: '^[A-Z]{1,16}$', description: 'The HTTP method, upper-case.' }),
  url: Type.String({ minLength: 1, maxLength: 8192, description: 'A gateway path (/github/repos/acme/app), or the absolute URL a forward-proxy request names (https://api.github.com/repos/acme/app), with its query.' }),
  headers: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]{1,256}$' }), Type.String({ maxLength: 8192 }), { description: 'Request headers by name.' })),
  body: Type.Optional(Type.String({ maxLength: 131072, description: 'The request body as text (a rule with a JSON Schema checks it; send content-type application/json in headers).' })),
})
const EXPLAINED = Type.Object({
  decision: Type.Union([Type.Literal('allow'), Type.Literal('deny')]),
  reason: Type.String({ description: 'rule_matched, a policy reason (no_rule_for_path, not_in_grant, ...), or connector_unknown, destination_refused, path_ambiguous.' }),
  rule: Type.Union([Type.String(), Type.Null()], { description: 'The rule that allowed, or that the refusal is about.' }),
  detail: Type.String(),
  connector: Type.Union([Type.String(), Type.Null()]),
  path: Type.Union([Type.String(), Type.Null()], { description: 'The path below the connector, normalised, as decided on.' }),
  via: Type.Union([Type.Literal('gateway_path'), Type.Literal('forward_origin'), Type.Null()], { description: "How the connector was found: a gateway path's first segment, or a forward request's origin and the upstream's base path." }),
  code: Type.Union([Type.String(), Type.Null()], { description: 'The error code the sandbox would be answered with (policy_denied, body_unexpected, ...); null when the request would be forwarded.' }),
  report: Type.Boolean({ description: 'The refusal is under report mode (connector or rule): not enforced; the request would be forwarded and audited as would_deny.' }),
  severity: Type.Object({
    needed: Type.Union([Type.String(), Type.Null()], { description: 'The severity of the rule that decided.' }),
    granted: Type.Union([Type.String(), Type.Null()], { description: 'The most the grant gives on this connector (for that rule, when one decided).' }),
  }),
  rules: Type.Array(Type.Object({
    rule: Type.String(),
    severity: Type.String(),
    mode: Type.Union([Type.Literal('enforce'), Type.Literal('report')]),
    outcome: Type.String({ description: 'allow; path or method (the rule does not apply to it); or the first check the rule fails: a policy reason (query_not_allowed, header_not_allowed, header_not_named, body_unexpected, upgrade_not_allowed, not_in_grant, severity_exceeds_grant, body_not_allowed).' }),
    detail: Type.String(),
  }), { description: "Every rule of the connector in order, each decided alone by the data plane's decide." }),
  egress: Type.Optional(Type.Object({
    host: Type.String(),
    verdict: Type.Union([Type.Literal('allowed'), Type.Literal('refused'), Type.Literal('resolved_when_sent')], { description: "An IP literal upstream is judged against the egress policy and allow_addresses; a name's addresses only when a request resolves it." }),
    code: Type.Union([Type.String(), Type.Null()]),
    detail: Type.String(),
  }, { description: 'The egress address check of the upstream host, as far as it can be made without resolving a name.' })),
  mcp: Type.Optional(Type.Array(Type.Object({
    method: Type.String({ description: "The JSON-RPC method ('(response)' for the client answering the server; GET or DELETE for the transport's own)." }),
    item: Type.Union([Type.String(), Type.Null()], { description: 'The tool, prompt or resource URI it names.' }),
    decision: Type.Union([Type.Literal('allow'), Type.Literal('deny')]),
    reason: Type.String(),
    rule: Type.Union([Type.String(), Type.Null()]),
    detail: Type.String(),
  }), { description: "A request to a connector's MCP endpoint: each JSON-RPC message as decided by the tool, prompt, resource and method rules (rules is then empty)." })),
  not_evaluated: Type.Array(Type.String(), { description: "The checks a real request also goes through that explain does not evaluate (egress addresses, budgets, an MCP server's trusted annotations, ...)." }),
  config_version: VERSION,
})

/** The configuration over the admin API: read it, reload it, and ask what it decides. */
export function configRoutes(deps: AdminDeps) {
  return [
    defineRoute({
      method: 'GET', path: '/v1/config', roles: ['admin', 'operator', 'auditor'], action: 'config.get', response: CONFIG_VIEW,
      summary: 'The configuration in force, with every default filled in: names of vault secrets, never a value.',
      async handle({ note }) {
        const config = deps.config()
        note({ version: config.version })
        return { kind: 'json', body: { version: config.version, file: config.file, pushed: config.pushed === undefined ? null : { seq: config.pushed.seq, sha256: config.pushed.sha256 }, reloadable: [...RELOADABLE], config: config.effective } }
      },
    }),
    defineRoute({
      method: 'POST', path: '/v1/config/reload', roles: ['admin'], action: 'config.reload', response: RELOADED,
      summary: 'Reads the configuration file again and puts it in force for new requests; if anything is wrong (config_invalid, config_reload_refused) the configuration in force stays.',
      async handle({ note }) {
        const result = await deps.reloadConfig()
        note({ result: result.result, version: result.version })
        if (result.result === 'failed') throw result.error
        return { kind: 'json', body: result.result === 'applied' ? { result: 'applied', version: result.version, previous: result.previous, warnings: [...result.warnings] } : { result: 'unchanged', version: result.version, warnings: [] } }
      },
    }),
    defineRoute({
      method: 'POST', path: '/v1/explain', roles: ['admin', 'operator'], action: 'config.explain', body: EXPLAIN, response: EXPLAINED,
      summary: 'What the configuration in force decides for one request under a grant, and by which rule; nothing is sent, no credential is read.',
      async handle({ body, note }) {
        const config = deps.config()
        let grants
        try {
          grants = body.grant.map(parseGrant)
        } catch (err) {
          throw invalid(err instanceof OperatorError ? `grant: ${err.message}` : 'grant is not valid')
        }
        const headers = Object.fromEntries(Object.entries(body.headers ?? {}).map(([name, value]) => [name.toLowerCase(), value]))
        const explanation = explain(config.policy, { grants, method: body.method, url: body.url, headers, body: body.body }, config.budgets)
        note({ connector: explanation.connector, decision: explanation.decision, version: config.version })
        return { kind: 'json', body: { ...explanation, config_version: config.version } }
      },
    }),
  ] as const
}
