/** The `assertion` block of a connector: its schema (merged into config/schema.ts) and its compile step. */

import type { FieldPath } from '../schema-kit/field-path.ts'
import { TOKEN } from '../schema-kit/patterns.ts'
import type { AssertionOptions } from '../model/options.ts'

export const DEFAULT_ASSERTION_HEADER = 'x-keyvalet-assertion'
export const DEFAULT_ISSUER = 'keyvalet'

export const ASSERTION_BLOCK = {
  type: 'object',
  additionalProperties: false,
  description:
    "Adds to every allowed request a short-lived JWT (EdDSA, Ed25519) signed by keyvalet that names the invoking user (sub), the agent (act.sub), the workspace, the task and the session, for internal APIs that verify it against keyvalet's JWKS (GET /.well-known/jwks.json on the gateway). It comes in addition to the credential, if any. The sandbox's own value of the header is never forwarded. See docs/credentials.md.",
  properties: {
    header: {
      type: 'string',
      pattern: TOKEN,
      errorMessage: 'must be an HTTP header name',
      default: DEFAULT_ASSERTION_HEADER,
      description: `The request header that carries the JWT (its bare compact form). Default ${DEFAULT_ASSERTION_HEADER}. Not Host, a hop-by-hop header or the connector's credential header.`,
    },
    ttl_s: { type: 'integer', minimum: 1, maximum: 3600, default: 60, description: 'Lifetime of each assertion in seconds (exp - iat). Default 60.' },
    audience: { type: 'string', minLength: 1, maxLength: 256, description: "The aud claim, which the API checks. Default: the connector's name." },
    issuer: { type: 'string', minLength: 1, maxLength: 256, default: DEFAULT_ISSUER, description: `The iss claim, which the API checks. Default ${DEFAULT_ISSUER}.` },
  },
} as const

export interface RawAssertion { header?: string; ttl_s?: number; audience?: string; issuer?: string }

/** `reserved`: lower-case header names the assertion may not take (framing headers, the credential's slot). */
export function compileAssertion(connector: string, raw: RawAssertion, reserved: ReadonlySet<string>, problem: (f: FieldPath, m: string) => void): AssertionOptions {
  const header = (raw.header ?? DEFAULT_ASSERTION_HEADER).toLowerCase()
  if (reserved.has(header)) problem(['header'], `${header} cannot carry the assertion (Host, hop-by-hop headers and the connector's credential header are refused)`)
  return { header, ttlSeconds: raw.ttl_s ?? 60, audience: raw.audience ?? connector, issuer: raw.issuer ?? DEFAULT_ISSUER }
}
