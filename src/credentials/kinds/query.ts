import type { CredentialKind } from '../kind.ts'
import { withoutParam, withParam } from '../query-param.ts'

/**
 * A query parameter (APIs that take `?key=`). Whatever the sandbox sent under that name, in any
 * spelling a server may read as it (query-param.ts), is removed; the rest of the query is sent as
 * it came, with the credential appended.
 */
export const query = {
  kind: 'query',
  slot: (binding) => ({ param: paramName(binding.name) }),
  inject(req, binding, secret) {
    const name = paramName(binding.name)
    req.query = withParam(withoutParam(req.query, name), name, secret)
  },
  echoValues: (_binding, secret) => [secret],
} satisfies CredentialKind

function paramName(name: string | undefined): string {
  if (name === undefined) throw new Error('query credential binding without a parameter name')
  return name
}
