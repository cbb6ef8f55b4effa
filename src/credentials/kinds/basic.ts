import Type from 'typebox'
import { defineKind } from '../kind.ts'

/** HTTP Basic with a configured username and the secret as password (git over HTTPS, many APIs). */
export const basic = defineKind({
  kind: 'basic',
  summary: 'Authorization: Basic with `username` and the secret as password.',
  fields: {
    username: Type.Optional(Type.String({ minLength: 1, description: 'For inject: basic (required): the username; the secret is the password.' })),
  },
  required: ['username'],
  compile: (raw) => ({ username: raw.username ?? '' }),
  slot: () => ({ header: 'authorization' }),
  inject(req, { username }, secret) {
    req.headers.authorization = `Basic ${encode(username, secret)}`
  },
  echoValues: ({ username }, secret) => [secret, `${username}:${secret}`],
  basic: () => true,
})

function encode(username: string, secret: string): string {
  return Buffer.from(`${username}:${secret}`, 'utf8').toString('base64')
}
