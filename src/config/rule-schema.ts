/** The schema of one rule of a connector (`connectors.<name>.rules[]`); see schema.ts. */

import Type, { type Static } from 'typebox'
import { RULE_ID, TOKEN } from '../schema-kit/patterns.ts'
import { Defaulted, NamedMap } from '../schema-kit/builders.ts'
import { APPROVAL_BLOCK } from '../approvals/config.ts'

const constraint = (what: string) => Type.Object({
  pattern: Type.Optional(Type.String({
    minLength: 1,
    maxLength: 1000,
    description: `A JavaScript regular expression (unicode mode) the whole value must match; it is anchored for you as ^(?:pattern)$. Every value of a repeated ${what} must match.`,
  })),
  required: Defaulted(Type.Boolean({ default: false, description: `When true, a request without this ${what} is refused.` })),
}, { additionalProperties: false, description: `A constraint on one ${what}.` })

export const RULE_SCHEMA = Type.Object({
  id: Type.String({
    pattern: RULE_ID,
    errorMessage: 'must be lower-case letters, digits, ".", "_" or "-", starting with a letter or digit (at most 63)',
    description: 'Unique within the connector. Appears in audit records and can be named in grants (github:write:create-issue).',
  }),
  methods: Type.Array(Type.String({ pattern: '^[A-Z][A-Z0-9_-]{0,31}$', errorMessage: 'must be an upper-case HTTP method such as GET' }), {
    minItems: 1,
    uniqueItems: true,
    description: 'Upper-case HTTP methods this rule allows, e.g. [GET, HEAD]. A rule never allows a method it does not list. CONNECT and TRACE are refused.',
  }),
  path: Type.Union([
    Type.String({ description: 'one pattern' }),
    Type.Array(Type.String(), { minItems: 1, uniqueItems: true, description: 'several: the rule applies to a path any of them matches' }),
  ], {
    description:
      "Path pattern below the upstream's base path: literals, '*' or ':name' for exactly one segment, '**' (last only) for one or more segments below the prefix. `/a/**` does not match `/a` itself: write `path: [/a, /a/**]` for both. A trailing '/' must match a trailing '/'. See src/policy/path-pattern.ts.",
  }),
  severity: Type.Enum(['read', 'write', 'admin'], {
    description: 'How much this rule lets a task do; a grant of severity S covers rules of severity S and below (read < write < admin).',
  }),
  query: Defaulted(NamedMap(constraint('query parameter'), {
    default: {},
    propertyNames: { minLength: 1 },
    description: 'Constraints on query parameters, by parameter name.',
  })),
  allow_other_query: Defaulted(Type.Boolean({
    default: true,
    description: 'When false, query parameters not named under `query` are refused.',
  })),
  websocket: Defaulted(Type.Boolean({
    default: false,
    description:
      'When true, a GET matching this rule may upgrade to a WebSocket: keyvalet decides the upgrade request like any other, attaches the credential, and then relays the connection both ways until either side closes. Frames are not inspected. Without it, upgrades are refused (upgrade_refused).',
  })),
  headers: Defaulted(NamedMap(constraint('header'), {
    default: {},
    propertyNames: { pattern: TOKEN, errorMessage: 'must be an HTTP header name' },
    description:
      'Constraints on request headers, by header name (case-insensitive). Naming a routing header here (Forwarded, X-Forwarded-*, X-Original-URL and the others docs/security.md lists, which keyvalet otherwise drops) lets it through to the upstream once its constraint passed; credential slots and hop-by-hop headers are dropped whatever a rule says. On an aws_sigv4 connector, a request carrying an x-amz-* header that changes access or meaning (x-amz-acl, x-amz-grant-*, x-amz-website-redirect-location, x-amz-server-side-encryption*, x-amz-object-lock-*, x-amz-tagging, x-amz-storage-class, ..., or one keyvalet does not know) fits only a rule that names it here; give it a pattern (see docs/credentials.md).',
  })),
  body: Type.Optional(Type.Unsafe<Record<string, unknown>>(Type.Object({}, {
    description:
      'A JSON Schema (draft 2020-12) the request body must satisfy; the body must then be strict JSON (UTF-8 without a byte-order mark, no duplicate keys, at most 128 levels of nesting). Bodies are read up to limits.max_body_inspect_bytes to check them.',
  }))),
  mode: Type.Optional(Type.Enum(['enforce', 'report'], {
    description: 'enforce: a request this rule refuses is refused. report: it is forwarded anyway, and audited as decision would_deny with the reason (metrics count it): to try a rule on real traffic before enforcing it. Default enforce. A refusal that names no rule (no rule for the path) follows the connector\'s mode.',
  })),
  allow_body: Type.Optional(Type.Boolean({
    description:
      'Whether a GET, HEAD, DELETE or OPTIONS request matching this rule may carry a body (Content-Length above 0, or Transfer-Encoding). Default false, or true when the rule has a body schema: otherwise such a request is refused (400 body_unexpected), since some frameworks read a body there as the real parameters. Other methods may always carry one.',
  })),
  approval: Type.Optional(APPROVAL_BLOCK),
}, {
  additionalProperties: false,
  description:
    'One kind of request the connector lets through. Rules are tried in order; the first whose path, method, query, headers and body all pass (and which the task grant covers) allows the request.',
})

export type RuleFile = Static<typeof RULE_SCHEMA>
