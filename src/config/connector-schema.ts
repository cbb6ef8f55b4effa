/** The schema of one connector (`connectors.<name>`), its credential and a corporate proxy; see schema.ts. */

import { SECRET_NAME } from '../schema-kit/patterns.ts'
import { SOURCES } from '../credentials/sources/registry.ts'
import { ALL_CREDENTIAL_KINDS } from '../credentials/registry.ts'
import { ASSERTION_BLOCK } from '../assertion/config.ts'
import { ATTRIBUTION_BLOCK } from '../attribution/config.ts'
import { RULE_SCHEMA } from './rule-schema.ts'

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

export const UPSTREAM_PROXY_SCHEMA = {
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

export const CONNECTOR_SCHEMA = {
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
      anyOf: [{ const: 'none', description: 'connect directly even when the instance has an upstream_proxy' }, UPSTREAM_PROXY_SCHEMA],
      description: "This connector's corporate proxy, overriding the instance's upstream_proxy; or none.",
    },
    rules: { type: 'array', items: RULE_SCHEMA, description: 'The requests this connector lets through, tried in order. No rules: everything is refused.' },
    assertion: ASSERTION_BLOCK,
    attribution: ATTRIBUTION_BLOCK,
  },
}
