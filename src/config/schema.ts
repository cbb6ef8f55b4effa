/**
 * The structure of keyvalet.yaml, as a plain JSON Schema (draft 2020-12). The `description`s are
 * the configuration reference. `additionalProperties: false` everywhere, so a typo is an error.
 *
 * `errorMessage` is ours (validators ignore unknown keywords): load.ts shows it instead of the
 * generic "must match pattern ...". Checks JSON Schema cannot express well (URLs, regexes, path
 * patterns, which credential fields go with which `inject`) are done by load.ts after this.
 */

import { CONNECTOR_NAME, RULE_ID, SECRET_NAME, TOKEN } from '../schema-kit/patterns.ts'
import { DURATION_PATTERN } from '../duration.ts'
import { SOURCES } from '../credentials/sources/registry.ts'
import { ALL_CREDENTIAL_KINDS } from '../credentials/registry.ts'
import { ASSERTION_BLOCK } from '../assertion/config.ts'
import { ATTRIBUTION_BLOCK } from '../attribution/config.ts'


const constraint = (what: string) => ({
  type: 'object',
  additionalProperties: false,
  description: `A constraint on one ${what}.`,
  properties: {
    pattern: {
      type: 'string',
      minLength: 1,
      maxLength: 1000,
      description: `A JavaScript regular expression (unicode mode) the whole value must match; it is anchored for you as ^(?:pattern)$. Every value of a repeated ${what} must match.`,
    },
    required: { type: 'boolean', default: false, description: `When true, a request without this ${what} is refused.` },
  },
})

const rule = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'methods', 'path', 'severity'],
  description:
    'One kind of request the connector lets through. Rules are tried in order; the first whose path, method, query, headers and body all pass (and which the task grant covers) allows the request.',
  properties: {
    id: {
      type: 'string',
      pattern: RULE_ID,
      errorMessage: 'must be lower-case letters, digits, ".", "_" or "-", starting with a letter or digit (at most 63)',
      description: 'Unique within the connector. Appears in audit records and can be named in grants (github:write:create-issue).',
    },
    methods: {
      type: 'array',
      minItems: 1,
      uniqueItems: true,
      items: { type: 'string', pattern: '^[A-Z][A-Z0-9_-]{0,31}$', errorMessage: 'must be an upper-case HTTP method such as GET' },
      description: 'Upper-case HTTP methods this rule allows, e.g. [GET, HEAD]. A rule never allows a method it does not list. CONNECT and TRACE are refused.',
    },
    path: {
      anyOf: [
        { type: 'string', description: 'one pattern' },
        { type: 'array', items: { type: 'string' }, minItems: 1, uniqueItems: true, description: 'several: the rule applies to a path any of them matches' },
      ],
      description:
        "Path pattern below the upstream's base path: literals, '*' or ':name' for exactly one segment, '**' (last only) for one or more segments below the prefix. `/a/**` does not match `/a` itself: write `path: [/a, /a/**]` for both. A trailing '/' must match a trailing '/'. See src/policy/path-pattern.ts.",
    },
    severity: {
      enum: ['read', 'write', 'admin'],
      description: 'How much this rule lets a task do; a grant of severity S covers rules of severity S and below (read < write < admin).',
    },
    query: {
      type: 'object',
      propertyNames: { minLength: 1 },
      additionalProperties: constraint('query parameter'),
      description: 'Constraints on query parameters, by parameter name.',
    },
    allow_other_query: {
      type: 'boolean',
      default: true,
      description: 'When false, query parameters not named under `query` are refused.',
    },
    websocket: {
      type: 'boolean',
      default: false,
      description:
        'When true, a GET matching this rule may upgrade to a WebSocket: keyvalet decides the upgrade request like any other, attaches the credential, and then relays the connection both ways until either side closes. Frames are not inspected. Without it, upgrades are refused (upgrade_refused).',
    },
    headers: {
      type: 'object',
      propertyNames: { pattern: TOKEN, errorMessage: 'must be an HTTP header name' },
      additionalProperties: constraint('header'),
      description:
        'Constraints on request headers, by header name (case-insensitive). Naming a routing header here (Forwarded, X-Forwarded-*, X-Original-URL and the others docs/security.md lists, which keyvalet otherwise drops) lets it through to the upstream once its constraint passed; credential slots and hop-by-hop headers are dropped whatever a rule says. On an aws_sigv4 connector, a request carrying an x-amz-* header that changes access or meaning (x-amz-acl, x-amz-grant-*, x-amz-website-redirect-location, x-amz-server-side-encryption*, x-amz-object-lock-*, x-amz-tagging, x-amz-storage-class, ..., or one keyvalet does not know) fits only a rule that names it here; give it a pattern (see docs/credentials.md).',
    },
    body: {
      type: 'object',
      description:
        'A JSON Schema (draft 2020-12) the request body must satisfy; the body must then be strict JSON (UTF-8 without a byte-order mark, no duplicate keys, at most 128 levels of nesting). Bodies are read up to limits.max_body_inspect_bytes to check them.',
    },
    allow_body: {
      type: 'boolean',
      description:
        'Whether a GET, HEAD, DELETE or OPTIONS request matching this rule may carry a body (Content-Length above 0, or Transfer-Encoding). Default false, or true when the rule has a body schema: otherwise such a request is refused (400 body_unexpected), since some frameworks read a body there as the real parameters. Other methods may always carry one.',
    },
  },
}

const credential = {
  type: 'object',
  additionalProperties: false,
  required: ['inject'],
  description: 'Where the real credential comes from and how it is attached. Without it, requests go out with no credential.',
  properties: {
    source: {
      enum: SOURCES.map((s) => s.type),
      description: `Where the value comes from (default static): ${SOURCES.map((s) => `${s.type}: ${s.summary}`).join('. ')}.`,
    },
    secret: {
      type: 'string',
      pattern: SECRET_NAME,
      errorMessage: 'must be lower-case letters, digits, ".", "_" or "-", starting with a letter or digit (at most 63)',
      description: 'Name of the secret in the vault (`keyvalet secret set <name>`). Required for the static source; what it holds for other sources is described under their block.',
    },
    ...Object.fromEntries(SOURCES.flatMap((s) => (s.block === undefined ? [] : [[s.type, s.block]]))),
    inject: {
      enum: ALL_CREDENTIAL_KINDS.map((k) => k.kind),
      description: ALL_CREDENTIAL_KINDS.map((k) => `${k.kind}: ${k.summary}`).join(' '),
    },
    ...Object.assign({}, ...ALL_CREDENTIAL_KINDS.map((k) => k.fields)),
  },
}

const upstreamProxy = {
  type: 'object',
  additionalProperties: false,
  required: ['url'],
  description: 'A corporate HTTP proxy that upstream connections go through (CONNECT for every upstream, TLS to the upstream still verified end to end by keyvalet).',
  properties: {
    url: { type: 'string', description: 'http://host:port of the proxy.' },
    secret: {
      type: 'string',
      pattern: SECRET_NAME,
      errorMessage: 'must be lower-case letters, digits, ".", "_" or "-", starting with a letter or digit (at most 63)',
      description: "Vault secret holding the proxy's own credentials as user:password (sent as Proxy-Authorization: Basic). Read when keyvalet starts.",
    },
    allow_addresses: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      description: 'CIDRs the proxy may be at although not public (a corporate proxy usually is on a private network).',
    },
  },
}

const connector = {
  type: 'object',
  additionalProperties: false,
  required: ['upstream'],
  description: 'One upstream service, the credential keyvalet attaches for it, and the rules of what may pass.',
  properties: {
    upstream: {
      type: 'string',
      description:
        'Absolute base URL, e.g. https://api.github.com or https://api.openai.com/v1. https unless allow_insecure; no query, fragment or user info. Its path prefixes every forwarded path.',
    },
    allow_insecure: {
      type: 'boolean',
      default: false,
      description: 'Must be true for an http:// upstream: the credential then crosses the network in cleartext. For local tests only.',
    },
    ca_file: {
      type: 'string',
      minLength: 1,
      description: "A PEM file of extra CA certificates trusted for this upstream (besides the system store), relative to the config file's folder. Read at load.",
    },
    credential,
    placeholder: {
      type: 'string',
      minLength: 8,
      maxLength: 512,
      description:
        'The stand-in value the sandbox holds for this credential (e.g. in OPENAI_API_KEY), for SDKs that insist on one. In the credential slot keyvalet replaces it with the real credential; seen anywhere else (another header, the query, a request to another host) the request is refused as an exfiltration attempt.',
    },
    allow_addresses: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      description:
        'CIDRs this connector may reach although they are loopback, private, link-local or otherwise not public (refused by default), e.g. [127.0.0.1/32] for a local test upstream.',
    },
    upstream_proxy: {
      anyOf: [{ const: 'none', description: 'connect directly even when the instance has an upstream_proxy' }, upstreamProxy],
      description: "This connector's corporate proxy, overriding the instance's upstream_proxy; or none.",
    },
    rules: { type: 'array', items: rule, description: 'The requests this connector lets through, tried in order. No rules: everything is refused.' },
    assertion: ASSERTION_BLOCK,
    attribution: ATTRIBUTION_BLOCK,
  },
}

export const CONFIG_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  additionalProperties: false,
  required: ['version', 'connectors'],
  description: 'keyvalet configuration file (YAML).',
  properties: {
    version: { const: 1, description: 'Configuration format version. Must be 1.' },
    listen: {
      type: 'object',
      additionalProperties: false,
      description: 'Where keyvalet listens.',
      properties: {
        gateway: {
          type: 'string',
          default: '127.0.0.1:8787',
          description: 'host:port of the gateway listener (IPv6 as [::1]:8787). Port 0 picks a free port. Default 127.0.0.1:8787.',
        },
        forward: {
          type: 'string',
          description:
            'host:port of the forward-proxy listener (HTTPS_PROXY=http://task:KEY@host:port): absolute-form http:// requests and CONNECT, with TLS interception for connector hosts. Not set: no forward proxy.',
        },
        gateway_url: {
          type: 'string',
          description:
            "The gateway as sandboxes reach it, e.g. http://keyvalet.internal:8787: what session create --env gives them (KEYVALET_GATEWAY, SDK base URLs), and, with a forward proxy, the one host NO_PROXY exempts. NO_PROXY cannot name a port in curl or git, so it exempts every port of that host: give the gateway a name of its own that resolves, for sandboxes, to an address where only keyvalet listens (the orchestrator's DNS, /etc/hosts, Kubernetes hostAliases). Not set: the listen.gateway address; with a forward proxy, --env then neither names nor exempts the gateway (every request goes through the proxy).",
        },
        forward_url: {
          type: 'string',
          description: 'The forward proxy as sandboxes reach it, e.g. http://keyvalet.internal:8789: the host and port of the HTTPS_PROXY that session create --env prints. Not set: the listen.forward address.',
        },
      },
    },
    upstream_proxy: { ...upstreamProxy, description: `${upstreamProxy.description} Applies to every connector that does not set its own.` },
    dns: {
      type: 'object',
      additionalProperties: false,
      description: 'How keyvalet resolves upstream host names. It asks DNS servers itself (the sandbox needs no resolver); /etc/hosts does not apply.',
      properties: {
        servers: {
          type: 'array',
          items: { type: 'string', minLength: 1 },
          description: "DNS servers as 'ip' or 'ip:port' ('[::1]:53' for IPv6). Default: the servers in the system's resolv.conf.",
        },
      },
    },
    tunnels: {
      type: 'array',
      items: {
        anyOf: [
          { type: 'string', description: 'host:port' },
          {
            type: 'object',
            additionalProperties: false,
            required: ['to'],
            properties: {
              to: { type: 'string', description: 'host:port' },
              allow_addresses: { type: 'array', items: { type: 'string', minLength: 1 }, description: 'CIDRs this destination may resolve to although not public (for local tests).' },
            },
          },
        ],
      },
      description:
        'host:port destinations the forward proxy tunnels without interception (e.g. registry.npmjs.org:443): decided on the CONNECT authority, audited, never given a credential. Every other CONNECT that no connector covers is refused.',
    },
    data_dir: {
      type: 'string',
      minLength: 1,
      default: './.keyvalet',
      description:
        "Folder for keyvalet.db (and master.key when no master key is given in the environment), relative to the config file's folder. Default ./.keyvalet.",
    },
    audit: {
      type: 'object',
      additionalProperties: false,
      description: 'How audit records are written. Every record is committed before the response it describes completes.',
      properties: {
        fsync: {
          type: 'boolean',
          default: false,
          description:
            'true: each commit of audit records is flushed to disk (fsync) before the responses complete, so records survive a power loss; costs a disk flush per batch. false: committed to the operating system, so records survive a crash of keyvalet but not of the machine. Default false.',
        },
        reserve_bytes: {
          type: 'integer',
          minimum: 65536,
          default: 16777216,
          description:
            'Disk space held for the audit log: a file of this size beside it (<data_dir>/keyvalet-audit.db.reserve), and at least as much free besides it. With less, keyvalet takes no new request (503 audit_unavailable) until there is room again; the reserve is given up to write the records of the requests already taken. Default 16777216 (16 MiB).',
        },
        open_after_ms: {
          type: 'integer',
          minimum: 1,
          default: 1000,
          description:
            "A request still in flight this long after its credential was attached gets an open record (phase: open) at once, completed by its closing record (phase: close) when it ends, so a crash of keyvalet leaves a record of it. Server-Sent Events and WebSockets get theirs before their first byte reaches the sandbox. Default 1000.",
        },
      },
    },
    sessions: {
      type: 'object',
      additionalProperties: false,
      description: 'Task sessions (session create, keyvalet run).',
      properties: {
        max_ttl: {
          type: 'string',
          pattern: DURATION_PATTERN,
          errorMessage: 'must be a whole number and a unit: s, m, h or d (e.g. 8h, 30d)',
          default: '30d',
          description: 'The longest a session (its task key) may last; a longer --ttl is refused. At most 365d. Default 30d.',
        },
      },
    },
    limits: {
      type: 'object',
      additionalProperties: false,
      description: 'Resource limits. All optional.',
      properties: {
        max_body_inspect_bytes: {
          type: 'integer',
          minimum: 1,
          default: 1048576,
          description: "Largest request body read to check a rule's body schema; a larger one is refused. Default 1048576 (1 MiB).",
        },
        upstream_timeout_ms: {
          type: 'integer',
          minimum: 1,
          default: 30000,
          description: 'How long to wait for the upstream response headers, in milliseconds (then 504 upstream_timeout). Default 30000.',
        },
        request_timeout_ms: {
          type: 'integer',
          minimum: 1,
          default: 20000,
          description: 'The request line and headers must arrive within this many milliseconds (slow-header clients are cut off with request_timeout). Default 20000.',
        },
        idle_timeout_ms: {
          type: 'integer',
          minimum: 1,
          default: 300000,
          description:
            'A connection on which nothing moves in either direction for this many milliseconds is closed. Bodies may take as long as they keep moving. A request still waiting for its upstream is answered 504 idle_timeout first; one whose response or upload has stalled is cut; both are audited idle_timeout. Must be longer than upstream_timeout_ms and request_timeout_ms (`keyvalet check` warns otherwise). Default 300000.',
        },
        anonymous_records_per_source_per_minute: {
          type: 'integer',
          minimum: 1,
          default: 60,
          description:
            'Audit records one source address may write per minute for refusals that name no session: no task key, a malformed or unknown one, bytes the parser refused. Beyond it such refusals are still answered, and counted in one summary record per listener (reason anonymous_records_suppressed, status 0) and a log line, at most once a minute. A connection that closes without sending a byte is never recorded, only counted in that log line. Default 60.',
        },
        anonymous_records_per_minute: {
          type: 'integer',
          minimum: 1,
          default: 600,
          description: 'The same limit for all source addresses together, so that many addresses cannot grow the audit log either. Default 600.',
        },
        shutdown_grace_ms: {
          type: 'integer',
          minimum: 0,
          default: 10000,
          description: 'On SIGTERM/SIGINT, requests and streams in flight may finish for this many milliseconds; what is left is then cut, each with its closing audit record (error shutting_down). Default 10000.',
        },
      },
    },
    connectors: {
      type: 'object',
      propertyNames: { pattern: CONNECTOR_NAME, errorMessage: 'connector names must match ^[a-z][a-z0-9-]{0,62}$' },
      additionalProperties: connector,
      description: 'Connectors by name. The name is the first path segment of gateway URLs (http://keyvalet:8787/<name>/...) and appears in grants.',
    },
  },
} as const
