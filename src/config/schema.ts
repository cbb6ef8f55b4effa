/**
 * The structure of keyvalet.yaml, as a typebox schema (JSON Schema draft 2020-12). The
 * `description`s are the configuration reference; a field's type and its default are written once,
 * here: `ConfigFile` (Static<>) is the file after load.ts applied the defaults.
 * `additionalProperties: false` everywhere, so a typo is an error.
 *
 * `errorMessage` is ours (validators ignore unknown keywords): load.ts shows it instead of the
 * generic "must match pattern ...". Checks JSON Schema cannot express well (URLs, regexes, path
 * patterns, which credential fields go with which `inject`) are done by load.ts after this.
 *
 * Assembled from blocks: a connector (connector-schema.ts), its rules (rule-schema.ts), and the
 * blocks each feature owns (credential sources and kinds, assertion, attribution).
 */

import Type, { type Static } from 'typebox'
import { CONNECTOR_NAME } from '../schema-kit/patterns.ts'
import { DURATION_PATTERN } from '../duration.ts'
import { BUDGETS_BLOCK } from '../budgets/config.ts'
import { APPROVALS_BLOCK } from '../approvals/config.ts'
import { CONNECTOR_SCHEMA, upstreamProxySchema } from './connector-schema.ts'
import { Defaulted, NamedMap } from '../schema-kit/builders.ts'
import { LOG_FORMATS, LOG_LEVELS } from '../log.ts'
import { STORE_SCHEMA } from './store-schema.ts'

const CIDRS = Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'CIDRs this destination may resolve to although not public (for local tests).' })

const LISTEN = Type.Object({
  gateway: Defaulted(Type.String({
    default: '127.0.0.1:8787',
    description: 'host:port of the gateway listener (IPv6 as [::1]:8787). Port 0 picks a free port. Default 127.0.0.1:8787.',
  })),
  forward: Type.Optional(Type.String({
    description:
      'host:port of the forward-proxy listener (HTTPS_PROXY=http://task:KEY@host:port): absolute-form http:// requests and CONNECT, with TLS interception for connector hosts. Not set: no forward proxy.',
  })),
  admin: Type.Optional(Type.String({
    description:
      'host:port of the admin API listener (e.g. 127.0.0.1:8790): sessions, secrets and the rest of the control plane, for callers with an admin token (keyvalet admin token create), never for sandboxes. Never the address of the gateway or the forward proxy; keep it where sandboxes cannot reach it (loopback, or a network policy). Not set: no admin listener.',
  })),
  gateway_url: Type.Optional(Type.String({
    description:
      "The gateway as sandboxes reach it, e.g. http://keyvalet.internal:8787: what session create --env gives them (KEYVALET_GATEWAY, SDK base URLs), and, with a forward proxy, the one host NO_PROXY exempts. NO_PROXY cannot name a port in curl or git, so it exempts every port of that host: give the gateway a name of its own that resolves, for sandboxes, to an address where only keyvalet listens (the orchestrator's DNS, /etc/hosts, Kubernetes hostAliases). Not set: the listen.gateway address; with a forward proxy, --env then neither names nor exempts the gateway (every request goes through the proxy).",
  })),
  forward_url: Type.Optional(Type.String({
    description: 'The forward proxy as sandboxes reach it, e.g. http://keyvalet.internal:8789: the host and port of the HTTPS_PROXY that session create --env prints. Not set: the listen.forward address.',
  })),
}, { additionalProperties: false, default: {}, description: 'Where keyvalet listens.' })

const DNS = Type.Object({
  servers: Type.Optional(Type.Array(Type.String({ minLength: 1 }), {
    description: "DNS servers as 'ip' or 'ip:port' ('[::1]:53' for IPv6). Default: the servers in the system's resolv.conf.",
  })),
}, {
  additionalProperties: false,
  description: 'How keyvalet resolves upstream host names. It asks DNS servers itself (the sandbox needs no resolver); /etc/hosts does not apply.',
})

const TUNNELS = Type.Array(Type.Union([
  Type.String({ description: 'host:port' }),
  Type.Object({
    to: Type.String({ description: 'host:port' }),
    allow_addresses: Defaulted(CIDRS),
  }, { additionalProperties: false }),
]), {
  default: [],
  description:
    'host:port destinations the forward proxy tunnels without interception (e.g. registry.npmjs.org:443): decided on the CONNECT authority, audited, never given a credential. Every other CONNECT that no connector covers is refused.',
})

const AUDIT = Type.Object({
  fsync: Defaulted(Type.Boolean({
    default: false,
    description:
      'true: each commit of audit records is flushed to disk (fsync) before the responses complete, so records survive a power loss; costs a disk flush per batch. false: committed to the operating system, so records survive a crash of keyvalet but not of the machine. Default false. SQLite only: with a PostgreSQL store a commit is as durable as the server makes it (synchronous_commit).',
  })),
  thread: Defaulted(Type.Enum(['auto', 'on', 'off'], {
    default: 'auto',
    description:
      "Where records are hashed and committed. on: a thread of their own, so a slow commit (a disk flush, a stalled write, a server round trip) never blocks the proxy's event loop, at the cost of copying every record to that thread and back. off: on the proxy's thread, which costs less CPU per request while a commit is a write into the page cache, but a write the kernel stalls (dirty-page throttling) then stalls every request. auto: off for SQLite with fsync false, on otherwise. Default auto.",
  })),
  reserve_bytes: Defaulted(Type.Integer({
    minimum: 65536,
    default: 16777216,
    description:
      'Disk space held for the audit log: a file of this size beside it (<data_dir>/keyvalet-audit.db.reserve), and at least as much free besides it. With less, keyvalet takes no new request (503 audit_unavailable) until there is room again; the reserve is given up to write the records of the requests already taken. Default 16777216 (16 MiB).',
  })),
  spool_bytes: Defaulted(Type.Integer({
    minimum: 65536,
    default: 67108864,
    description:
      'PostgreSQL store only: while the server cannot be reached, audit records go to a local spool (<data_dir>/audit-spool/, fsynced when audit.fsync is true) of at most this many bytes, and into their chains in the server, in order, once it answers again (a spool left by a keyvalet that stopped meanwhile is flushed by the next one to start on this data_dir). Once the spool is full, keyvalet takes no new request (503 audit_unavailable) until the server answers. Default 67108864 (64 MiB).',
  })),
  open_after_ms: Defaulted(Type.Integer({
    minimum: 1,
    default: 1000,
    description:
      "A request still in flight this long after its credential was attached gets an open record (phase: open) at once, completed by its closing record (phase: close) when it ends, so a crash of keyvalet leaves a record of it. Server-Sent Events and WebSockets get theirs before their first byte reaches the sandbox. Default 1000.",
  })),
}, { additionalProperties: false, default: {}, description: 'How audit records are written. Every record is committed before the response it describes completes.' })

const SESSIONS = Type.Object({
  max_ttl: Defaulted(Type.String({
    pattern: DURATION_PATTERN,
    errorMessage: 'must be a whole number and a unit: s, m, h or d (e.g. 8h, 30d)',
    default: '30d',
    description: 'The longest a session (its task key) may last; a longer --ttl is refused. At most 365d. Default 30d.',
  })),
}, { additionalProperties: false, default: {}, description: 'Task sessions (session create, keyvalet run).' })

const LIMITS = Type.Object({
  max_body_inspect_bytes: Defaulted(Type.Integer({
    minimum: 1,
    default: 1048576,
    description: "Largest request body read to check a rule's body schema; a larger one is refused. Default 1048576 (1 MiB).",
  })),
  approval_body_bytes: Defaulted(Type.Integer({
    minimum: 1,
    default: 1048576,
    description: 'Largest request body held open while a request waits for approval (it is read whole, so the approver sees and the digest covers exactly what will be sent); a larger one is refused (413 approval_body_too_large). Default 1048576 (1 MiB).',
  })),
  approvals_per_session: Defaulted(Type.Integer({
    minimum: 1,
    default: 10,
    description: 'Most requests of one session that may wait for approval at once, across every instance on the store; the next is refused at once (429 approval_limit_reached) and no one is asked, so a sandbox cannot flood its approvers or the webhook. Default 10.',
  })),
  upstream_timeout_ms: Defaulted(Type.Integer({
    minimum: 1,
    default: 30000,
    description: 'How long to wait for the upstream response headers, in milliseconds (then 504 upstream_timeout). Default 30000.',
  })),
  request_timeout_ms: Defaulted(Type.Integer({
    minimum: 1,
    default: 20000,
    description: 'The request line and headers must arrive within this many milliseconds (slow-header clients are cut off with request_timeout). Default 20000.',
  })),
  idle_timeout_ms: Defaulted(Type.Integer({
    minimum: 1,
    default: 300000,
    description:
      'A connection on which nothing moves in either direction for this many milliseconds is closed. Bodies may take as long as they keep moving. A request still waiting for its upstream is answered 504 idle_timeout first; one whose response or upload has stalled is cut; both are audited idle_timeout. Over HTTP/2 this holds per stream (the stream alone is answered or reset), and the connection is closed once nothing moved on it with no stream open. Must be longer than upstream_timeout_ms and request_timeout_ms (`keyvalet check` warns otherwise). Default 300000.',
  })),
  anonymous_records_per_source_per_minute: Defaulted(Type.Integer({
    minimum: 1,
    default: 60,
    description:
      'Audit records one source address may write per minute for refusals that name no session: no task key, a malformed or unknown one, bytes the parser refused. Beyond it such refusals are still answered, and counted in one summary record per listener (reason anonymous_records_suppressed, status 0) and a log line, at most once a minute. A connection that closes without sending a byte is never recorded, only counted in that log line. Default 60.',
  })),
  anonymous_records_per_minute: Defaulted(Type.Integer({
    minimum: 1,
    default: 600,
    description: 'The same limit for all source addresses together, so that many addresses cannot grow the audit log either. Default 600.',
  })),
  h2_max_concurrent_streams: Defaulted(Type.Integer({
    minimum: 1,
    maximum: 1000,
    default: 100,
    description: 'HTTP/2 inside intercepted tunnels: streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS); a stream beyond it is reset REFUSED_STREAM. Default 100.',
  })),
  h2_max_header_list_bytes: Defaulted(Type.Integer({
    minimum: 1024,
    maximum: 262144,
    default: 32768,
    description: "HTTP/2: the largest header list a request may have once HPACK-decoded (SETTINGS_MAX_HEADER_LIST_SIZE), the same bound as an HTTP/1.1 head; a larger one (an HPACK bomb) is reset ENHANCE_YOUR_CALM before it is decoded whole. At most 128 fields either way. Default 32768.",
  })),
  h2_max_session_memory_mb: Defaulted(Type.Integer({
    minimum: 1,
    maximum: 256,
    default: 10,
    description: "HTTP/2: memory one connection's protocol state may hold (header tables, queued frames, unacknowledged PINGs and SETTINGS), in MiB; over it, new streams are refused. Default 10.",
  })),
  h2_max_resets_per_minute: Defaulted(Type.Integer({
    minimum: 1,
    default: 200,
    description: 'HTTP/2: streams a client may cancel (RST_STREAM) before their answer, per connection and minute. Over it (rapid reset, CVE-2023-44487) the connection is closed with GOAWAY ENHANCE_YOUR_CALM and audited h2_protocol_violation. Default 200.',
  })),
  h2_max_invalid_frames: Defaulted(Type.Integer({
    minimum: 0,
    default: 0,
    description: 'HTTP/2: malformed frames tolerated per connection beyond the first (a request with an upper-case or connection-specific header, a misplaced pseudo-header, frames out of order). Each malformed request is reset PROTOCOL_ERROR before keyvalet reads it and audited h2_stream_refused; the next one closes the connection, audited h2_protocol_violation. Default 0.',
  })),
  h2_max_rejected_streams: Defaulted(Type.Integer({
    minimum: 0,
    default: 10,
    description: 'HTTP/2: streams refused for going over h2_max_concurrent_streams or h2_max_session_memory_mb tolerated per connection; the next closes it, audited h2_protocol_violation. Default 10.',
  })),
  shutdown_grace_ms: Defaulted(Type.Integer({
    minimum: 0,
    default: 10000,
    description: 'On SIGTERM/SIGINT, requests and streams in flight may finish for this many milliseconds; what is left is then cut, each with its closing audit record (error shutting_down). Default 10000.',
  })),
}, { additionalProperties: false, default: {}, description: 'Resource limits. All optional.' })

const LOG = Type.Object({
  level: Defaulted(Type.Enum([...LOG_LEVELS], {
    default: 'info',
    description: 'The least severe operator log lines written: info (everything, including one `request` line per request), warn (upstream, DNS and TLS failures and worse), error (vault, credential and audit failures). Default info.',
  })),
  format: Defaulted(Type.Enum([...LOG_FORMATS], {
    default: 'json',
    description: 'json (one JSON object per line) or logfmt (key=value pairs). Default json.',
  })),
}, { additionalProperties: false, default: {}, description: "The operator log that `keyvalet start` writes to stdout: keyvalet's own events and one line per request (request id, mode, connector, method, decision, error code, upstream status, latency, trace id; never a secret, a task key, a query value or a body). Lines are written in batches: a line goes out about 20 ms after it is logged, with those logged meanwhile (every waiting line at exit)." })

const METRICS = Type.Object({
  enabled: Defaulted(Type.Boolean({
    default: true,
    description: 'Whether keyvalet keeps Prometheus metrics (served at GET /metrics on the admin listener, roles admin and auditor). Default true.',
  })),
}, { additionalProperties: false, default: {}, description: 'Prometheus metrics.' })

const FLEET = Type.Object({
  policy: Defaulted(Type.Enum(['file', 'pushed'], {
    default: 'file',
    description: "Where this instance's policy (connectors, tunnels and the reloadable limits) comes from. file: this file alone. pushed: this file with the newest policy pushed by `keyvalet config push` over it, verified under the master key, followed within a second (docs/deploy.md, \"Configuration in a fleet\"). Everything else always comes from this file. Default file.",
  })),
}, { additionalProperties: false, default: {}, description: 'How this instance takes part in a fleet on a shared store.' })

export const CONFIG_SCHEMA = Type.Object({
  version: Type.Unsafe<1>({ const: 1, description: 'Configuration format version. Must be 1.' }),
  listen: Defaulted(LISTEN),
  upstream_proxy: Type.Optional(upstreamProxySchema('Applies to every connector that does not set its own.')),
  dns: Type.Optional(DNS),
  tunnels: Defaulted(TUNNELS),
  data_dir: Defaulted(Type.String({
    minLength: 1,
    default: './.keyvalet',
    description:
      "Folder for keyvalet.db (and master.key when no master key is given in the environment), relative to the config file's folder. Default ./.keyvalet.",
  })),
  store: Type.Optional(STORE_SCHEMA),
  audit: Defaulted(AUDIT),
  sessions: Defaulted(SESSIONS),
  limits: Defaulted(LIMITS),
  log: Defaulted(LOG),
  metrics: Defaulted(METRICS),
  // Optional, not defaulted: a configuration without it keeps the version it had before the field existed.
  fleet: Type.Optional(FLEET),
  budgets: BUDGETS_BLOCK,
  approvals: Defaulted(APPROVALS_BLOCK),
  connectors: NamedMap(CONNECTOR_SCHEMA, {
    propertyNames: { pattern: CONNECTOR_NAME, errorMessage: 'connector names must match ^[a-z][a-z0-9-]{0,62}$' },
    description: 'Connectors by name. The name is the first path segment of gateway URLs (http://keyvalet:8787/<name>/...) and appears in grants.',
  }),
}, {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  additionalProperties: false,
  description: 'keyvalet configuration file (YAML).',
})

/** keyvalet.yaml as the compile steps see it: schema-checked, every default filled in. */
export type ConfigFile = Static<typeof CONFIG_SCHEMA>
