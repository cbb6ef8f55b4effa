import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseConfig } from '../config/load.ts'

const connector = (extra: string, rule = '{ id: post, methods: [POST], path: /items, severity: write, approval: {} }') => `version: 1
connectors:
  api:
    upstream: https://api.example.com
    credential: { secret: api-key, inject: bearer }
${extra}    rules:
      - ${rule}
`

function problems(text: string): string {
  try {
    parseConfig(text, 'keyvalet.yaml')
  } catch (err) {
    return (err as Error).message
  }
  return ''
}

describe('the approval blocks of keyvalet.yaml', () => {
  it('gives a rule 120s by default, and a connector its approval for the rules of its severity and above', () => {
    const config = parseConfig(connector('    approval: { severity: write, timeout: 30s }\n', '{ id: read, methods: [GET], path: /items, severity: read }\n      - { id: post, methods: [POST], path: /items, severity: write }\n      - { id: own, methods: [PUT], path: /items, severity: admin, approval: { summary: "Put {name}" } }'), 'keyvalet.yaml')
    const rules = config.policy.connectors.get('api')?.rules ?? []
    assert.deepEqual(rules.map((r) => [r.id, r.approval]), [
      ['read', undefined],
      ['post', { timeoutMs: 30_000, summary: undefined }],
      ['own', { timeoutMs: 120_000, summary: 'Put {name}' }],
    ])
  })

  it('refuses a timeout the idle timeout would cut, and one over an hour', () => {
    assert.match(problems(`limits: { idle_timeout_ms: 60000 }\n${connector('').replace('approval: {}', 'approval: { timeout: 60s }')}`), /rules\[0\]\.approval\.timeout: must be shorter than limits\.idle_timeout_ms \(60000 ms\)/)
    assert.match(problems(connector('').replace('approval: {}', 'approval: { timeout: 2h }')), /must be at most 1h/)
  })

  it('refuses approval on an aws_sigv4 connector, whose signature rewrites the headers it covers', () => {
    const text = `version: 1
connectors:
  s3:
    upstream: https://s3.eu-west-1.amazonaws.com
    credential: { secret: aws, inject: aws_sigv4, aws: { service: s3, region: eu-west-1 } }
    approval: { severity: write }
    rules:
      - { id: put, methods: [PUT], path: /bucket/**, severity: write }
`
    assert.match(problems(text), /connectors\.s3\.approval: approval is not available on an aws_sigv4 connector/)
  })

  it('refuses a webhook URL that is not http(s) or carries credentials', () => {
    const hook = (url: string) => `approvals:\n  webhook: { url: "${url}", secret: hook, admin_url: "https://admin.internal" }\n${connector('')}`
    assert.match(problems(hook('ftp://x.example')), /approvals\.webhook\.url: must be an http:\/\/ or https:\/\/ URL/)
    assert.match(problems(hook('https://u:p@x.example/h')), /must not carry credentials/)
    assert.equal(parseConfig(hook('https://x.example/h'), 'keyvalet.yaml').approvalWebhook?.format, 'json')
  })
})
