import { defineKind } from '../kind.ts'

export const bearer = defineKind({
  kind: 'bearer',
  summary: 'Authorization: Bearer <secret>.',
  fields: {},
  required: [],
  compile: () => ({}),
  slot: () => ({ header: 'authorization' }),
  inject(req, _options, secret) {
    req.headers.authorization = `Bearer ${secret}`
  },
  echoValues: (_options, secret) => [secret],
})
