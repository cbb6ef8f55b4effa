import type { CredentialKind } from '../kind.ts'

/** A query parameter (APIs that take `?key=`). Any value the sandbox sent for it is replaced. */
export const query = {
  kind: 'query',
  slot: (binding) => ({ param: paramName(binding.name) }),
  inject(req, binding, secret) {
    const params = new URLSearchParams(req.query)
    params.delete(paramName(binding.name))
    params.append(paramName(binding.name), secret)
    req.query = params.toString()
  },
  echoValues: (_binding, secret) => [secret],
} satisfies CredentialKind

function paramName(name: string | undefined): string {
  if (name === undefined) throw new Error('query credential binding without a parameter name')
  return name
}
