import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'

/** RFC 7636: a verifier of 43 base64url characters (256 random bits) and its S256 challenge. */
export function createPkce(): { readonly verifier: string; readonly challenge: string } {
  const verifier = randomBytes(32).toString('base64url')
  return { verifier, challenge: createHash('sha256').update(verifier, 'ascii').digest('base64url') }
}

/** The `state` that ties the redirect to this one flow (RFC 6749 §10.12). */
export function createState(): string {
  return randomBytes(24).toString('base64url')
}

export function sameState(expected: string, got: string | null): boolean {
  if (got === null) return false
  const a = Buffer.from(expected)
  const b = Buffer.from(got)
  return a.length === b.length && timingSafeEqual(a, b)
}
