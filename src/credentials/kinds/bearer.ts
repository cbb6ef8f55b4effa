import type { CredentialKind } from '../kind.ts'

export const bearer = {
  kind: 'bearer',
  slot: () => ({ header: 'authorization' }),
  inject(req, _binding, secret) {
    req.headers.authorization = `Bearer ${secret}`
  },
  echoValues: (_binding, secret) => [secret],
} satisfies CredentialKind
