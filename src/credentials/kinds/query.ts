import Type from 'typebox'
import { defineKind } from '../kind.ts'
import { withoutParam, withParam } from '../query-param.ts'

/**
 * A query parameter (APIs that take `?key=`). Whatever the sandbox sent under that name, in any
 * spelling a server may read as it (query-param.ts), is removed; the rest of the query is sent as
 * it came, with the credential appended.
 */
export const query = defineKind({
  kind: 'query',
  summary: 'the query parameter `param`.',
  fields: {
    param: Type.Optional(Type.String({ minLength: 1, description: 'For inject: query (required): the query parameter that carries the secret.' })),
  },
  required: ['param'],
  compile: (raw) => ({ name: raw.param ?? '' }),
  slot: ({ name }) => ({ param: name }),
  inject(req, { name }, secret) {
    req.query = withParam(withoutParam(req.query, name), name, secret)
  },
  echoValues: (_options, secret) => [secret],
})
