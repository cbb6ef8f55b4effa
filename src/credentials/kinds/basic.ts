import type { CredentialKind } from '../kind.ts'

/** HTTP Basic with a configured username and the secret as password (git over HTTPS, many APIs). */
export const basic = {
  kind: 'basic',
  slot: () => ({ header: 'authorization' }),
  inject(req, binding, secret) {
    req.headers.authorization = `Basic ${encode(binding.username ?? '', secret)}`
  },
  echoValues: (binding, secret) => [secret, `${binding.username ?? ''}:${secret}`],
} satisfies CredentialKind

function encode(username: string, secret: string): string {
  return Buffer.from(`${username}:${secret}`, 'utf8').toString('base64')
}
