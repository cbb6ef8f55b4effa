/** The schema of one connector (`connectors.<name>`), its credential and a corporate proxy; see schema.ts. */

import Type, { type Static, type TProperties, type TSchema } from 'typebox'
import { secretField } from '../schema-kit/patterns.ts'
import { Defaulted } from '../schema-kit/builders.ts'
import { SOURCES } from '../credentials/sources/registry.ts'
import { ALL_CREDENTIAL_KINDS } from '../credentials/registry.ts'
import { ASSERTION_BLOCK } from '../assertion/config.ts'
import { ATTRIBUTION_BLOCK } from '../attribution/config.ts'
import { RULE_SCHEMA } from './rule-schema.ts'
import { MCP_BLOCK } from '../mcp/config.ts'
import { CONNECTOR_APPROVAL_BLOCK } from '../approvals/config.ts'
import { USAGE_BLOCK } from '../budgets/config.ts'

/** Every kind's fields of `credential`, and every source's block (`credential.<type>`), each optional. */
const KIND_FIELDS: TProperties = Object.assign({}, ...ALL_CREDENTIAL_KINDS.map((k) => k.fields))
const SOURCE_BLOCKS: TProperties = Object.fromEntries(SOURCES.flatMap((s): [string, TSchema][] => (s.block === undefined ? [] : [[s.type, Type.Optional(s.block)]])))

/**
 * The `credential` block. Its source blocks and kind fields come from the registries, so their
 * types are not known here: each source and kind reads its own part (compile.ts hands it over).
 */
const CREDENTIAL_SCHEMA = Type.Object({
  source: Type.Optional(Type.Enum(SOURCES.map((s) => s.type), {
    description: `Where the value comes from (default static): ${SOURCES.map((s) => `${s.type}: ${s.summary}`).join('. ')}.`,
  })),
  secret: Type.Optional(secretField('Name of the secret in the vault (`keyvalet secret set <name>`). Required for the static source; what it holds for other sources is described under their block.')),
  ...SOURCE_BLOCKS,
  inject: Type.Enum(ALL_CREDENTIAL_KINDS.map((k) => k.kind), {
    description: ALL_CREDENTIAL_KINDS.map((k) => `${k.kind}: ${k.summary}`).join(' '),
  }),
  ...KIND_FIELDS,
}, {
  additionalProperties: false,
  description: 'Where the real credential comes from and how it is attached. Without it, requests go out with no credential.',
})

/** A corporate proxy; `where` ends the description (which connectors it applies to). */
export function upstreamProxySchema(where: string) {
  return Type.Object({
    url: Type.String({ description: 'http://host:port of the proxy.' }),
    secret: Type.Optional(secretField("Vault secret holding the proxy's own credentials as user:password (sent as Proxy-Authorization: Basic). Read when keyvalet starts.")),
    allow_addresses: Defaulted(Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description: 'CIDRs the proxy may be at although not public (a corporate proxy usually is on a private network).',
    })),
  }, {
    additionalProperties: false,
    description: `A corporate HTTP proxy that upstream connections go through (CONNECT for every upstream, TLS to the upstream still verified end to end by keyvalet).${where === '' ? '' : ` ${where}`}`,
  })
}

export const CONNECTOR_SCHEMA = Type.Object({
  upstream: Type.String({
    description:
      'Absolute base URL, e.g. https://api.github.com or https://api.openai.com/v1. https unless allow_insecure; no query, fragment or user info. Its path prefixes every forwarded path.',
  }),
  allow_insecure: Defaulted(Type.Boolean({
    default: false,
    description: 'Must be true for an http:// upstream: the credential then crosses the network in cleartext. For local tests only.',
  })),
  ca_file: Type.Optional(Type.String({
    minLength: 1,
    description: "A PEM file of extra CA certificates trusted for this upstream (besides the system store), relative to the config file's folder. Read at load.",
  })),
  credential: Type.Optional(CREDENTIAL_SCHEMA),
  placeholder: Type.Optional(Type.String({
    minLength: 8,
    maxLength: 512,
    description:
      'The stand-in value the sandbox holds for this credential (e.g. in OPENAI_API_KEY), for SDKs that insist on one. In the credential slot keyvalet replaces it with the real credential; seen anywhere else (another header, the query, a request to another host) the request is refused as an exfiltration attempt.',
  })),
  allow_addresses: Defaulted(Type.Array(Type.String({ minLength: 1 }), {
    default: [],
    description:
      'CIDRs this connector may reach although they are loopback, private, link-local or otherwise not public (refused by default), e.g. [127.0.0.1/32] for a local test upstream.',
  })),
  upstream_proxy: Type.Optional(Type.Union([
    Type.Unsafe<'none'>({ const: 'none', description: 'connect directly even when the instance has an upstream_proxy' }),
    upstreamProxySchema(''),
  ], { description: "This connector's corporate proxy, overriding the instance's upstream_proxy; or none." })),
  mode: Type.Optional(Type.Enum(['enforce', 'report'], {
    description: "enforce: requests the policy refuses are refused. report: every request the policy would refuse is forwarded anyway, with the credential, and audited as decision would_deny with its reason (metrics count them): the connector's rules are tried on real traffic and nothing is enforced, so use it only with a credential whose reach you accept. A rule can be in report mode on its own. Malformed requests (body_unexpected) and budgets are enforced in either mode. Default enforce.",
  })),
  rules: Defaulted(Type.Array(RULE_SCHEMA, { default: [], description: 'The requests this connector lets through, tried in order. No rules: everything is refused.' })),
  assertion: Type.Optional(ASSERTION_BLOCK),
  attribution: Type.Optional(ATTRIBUTION_BLOCK),
  mcp: Type.Optional(MCP_BLOCK),
  usage: Type.Optional(USAGE_BLOCK),
  approval: Type.Optional(CONNECTOR_APPROVAL_BLOCK),
}, {
  additionalProperties: false,
  description: 'One upstream service, the credential keyvalet attaches for it, and the rules of what may pass.',
})

export type ConnectorFile = Static<typeof CONNECTOR_SCHEMA>
export type CredentialFile = Static<typeof CREDENTIAL_SCHEMA>
export type UpstreamProxyFile = Static<ReturnType<typeof upstreamProxySchema>>
