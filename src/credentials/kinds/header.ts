import Type from 'typebox'
import { defineKind } from '../kind.ts'
import { TOKEN } from '../../schema-kit/patterns.ts'
import { FORBIDDEN_HEADERS } from '../../schema-kit/headers.ts'

/** A named header whose value is a template containing `{secret}` exactly once. */
export const header = defineKind({
  kind: 'header',
  summary: 'the `header` set to `template`.',
  fields: {
    header: Type.Optional(Type.String({
      pattern: TOKEN,
      errorMessage: 'must be an HTTP header name',
      description: 'For inject: header (required): the header to set, e.g. x-api-key. Not Host and not a hop-by-hop header.',
    })),
    template: Type.Optional(Type.String({
      description: 'For inject: header: the header value, with {secret} (exactly once) standing for the secret, e.g. "Token {secret}". Default "{secret}".',
    })),
  },
  required: ['header'],
  compile(raw, problem) {
    if (raw.header !== undefined && FORBIDDEN_HEADERS.has(raw.header.toLowerCase())) problem(['header'], `${raw.header} cannot carry a credential (Host and hop-by-hop headers are refused)`)
    const template = raw.template ?? '{secret}'
    if (template.split('{secret}').length !== 2) problem(['template'], 'must contain {secret} exactly once')
    if (/[\u0000-\u001f\u007f]/.test(template)) problem(['template'], 'must not contain control characters')
    return { name: (raw.header ?? '').toLowerCase(), template }
  },
  slot: ({ name }) => ({ header: name }),
  inject(req, options, secret) {
    req.headers[options.name] = render(options.template, secret)
  },
  echoValues: (options, secret) => [secret, render(options.template, secret)],
  basic: ({ name, template }) => name === 'authorization' && /^basic /i.test(template),
})

function render(template: string, secret: string): string {
  return template.replace('{secret}', () => secret)
}
