import type { CredentialKind } from '../kind.ts'

/** A named header whose value is a template containing `{secret}` exactly once (checked at load). */
export const header = {
  kind: 'header',
  slot: (binding) => ({ header: headerName(binding.name) }),
  inject(req, binding, secret) {
    req.headers[headerName(binding.name)] = render(binding.template, secret)
  },
  echoValues: (binding, secret) => [secret, render(binding.template, secret)],
} satisfies CredentialKind

function headerName(name: string | undefined): string {
  if (name === undefined) throw new Error('header credential binding without a header name')
  return name
}

function render(template: string | undefined, secret: string): string {
  return (template ?? '{secret}').replace('{secret}', () => secret)
}
