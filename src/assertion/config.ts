/** The `assertion` block of a connector: its schema (merged into config/schema.ts) and its compile step. */

import Type, { type Static } from 'typebox'
import type { FieldPath } from '../schema-kit/field-path.ts'
import { TOKEN } from '../schema-kit/patterns.ts'
import type { AssertionOptions } from '../model/options.ts'
import { Defaulted } from '../schema-kit/builders.ts'

export const DEFAULT_ASSERTION_HEADER = 'x-keyvalet-assertion'
export const DEFAULT_ISSUER = 'keyvalet'

export const ASSERTION_BLOCK = Type.Object({
  header: Defaulted(Type.String({
    pattern: TOKEN,
    errorMessage: 'must be an HTTP header name',
    default: DEFAULT_ASSERTION_HEADER,
    description: `The request header that carries the JWT (its bare compact form). Default ${DEFAULT_ASSERTION_HEADER}. Not Host, a hop-by-hop header or the connector's credential header.`,
  })),
  ttl_s: Defaulted(Type.Integer({ minimum: 1, maximum: 3600, default: 60, description: 'Lifetime of each assertion in seconds (exp - iat). Default 60.' })),
  audience: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: "The aud claim, which the API checks. Default: the connector's name." })),
  issuer: Defaulted(Type.String({ minLength: 1, maxLength: 256, default: DEFAULT_ISSUER, description: `The iss claim, which the API checks. Default ${DEFAULT_ISSUER}.` })),
}, {
  additionalProperties: false,
  description:
    "Adds to every allowed request a short-lived JWT (EdDSA, Ed25519) signed by keyvalet that names the invoking user (sub), the agent (act.sub), the workspace, the task and the session, for internal APIs that verify it against keyvalet's JWKS (GET /.well-known/jwks.json on the gateway). It comes in addition to the credential, if any. The sandbox's own value of the header is never forwarded. See docs/credentials.md.",
})

/** `reserved`: lower-case header names the assertion may not take (framing headers, the credential's slot). */
export function compileAssertion(connector: string, raw: Static<typeof ASSERTION_BLOCK>, reserved: ReadonlySet<string>, problem: (f: FieldPath, m: string) => void): AssertionOptions {
  const header = raw.header.toLowerCase()
  if (reserved.has(header)) problem(['header'], `${header} cannot carry the assertion (Host, hop-by-hop headers and the connector's credential header are refused)`)
  return { header, ttlSeconds: raw.ttl_s, audience: raw.audience ?? connector, issuer: raw.issuer }
}
