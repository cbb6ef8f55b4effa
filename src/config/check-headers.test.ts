import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseConfig } from './load.ts'
import { guardedHeaderNotes } from './check-headers.ts'

const config = parseConfig(`version: 1
connectors:
  s3:
    upstream: https://s3.eu-west-1.amazonaws.com
    credential: { secret: aws-prod, inject: aws_sigv4, aws: { service: s3, region: eu-west-1 } }
    rules:
      - { id: read, methods: [GET, HEAD], path: "/my-bucket/reports/**", severity: read }
      - { id: upload, methods: [PUT], path: "/my-bucket/uploads/**", severity: write }
      - id: shared
        methods: [PUT]
        path: "/my-bucket/shared/**"
        severity: write
        headers:
          x-amz-acl: { pattern: bucket-owner-full-control, required: true }
          x-amz-tagging: {}
          content-type: {}
  github:
    upstream: https://api.github.com
    credential: { secret: gh, inject: bearer }
    rules: [{ id: w, methods: [POST], path: /repos/o/r/issues, severity: write, headers: { x-amz-acl: {} } }]
`, 'keyvalet.yaml')

describe('keyvalet check on the headers a connector guards', () => {
  it('notes, for every write rule of an aws_sigv4 connector, which guarded headers it lets through and how', () => {
    const notes = guardedHeaderNotes(config.policy)
    assert.deepEqual(notes.map((n) => n.path), ['connectors.s3', 'connectors.s3.rules[1]', 'connectors.s3.rules[2]'])
    assert.match(notes[0]?.message ?? '', /^requests carrying x-amz-acl, x-amz-grant-\*, .*x-amz-website-redirect-location, .*x-amz-storage-class, .*and any x-amz-\* header keyvalet does not know, are refused unless the rule that allows them names the header$/)
    assert.equal(notes[1]?.message, 'rule upload (write: PUT /my-bucket/uploads/**) lets through none of these headers')
    assert.equal(notes[2]?.message, 'rule shared (write: PUT /my-bucket/shared/**) lets through x-amz-acl matching bucket-owner-full-control (required); x-amz-tagging with any value; none of the other headers')
  })

  it('warns, located, about a guarded header named without a pattern; not about unguarded headers or other kinds', () => {
    const warnings = config.warnings.filter((w) => w.path.includes('.headers.'))
    assert.deepEqual(warnings.map((w) => [w.line, w.path]), [[15, 'connectors.s3.rules[2].headers.x-amz-tagging']])
    assert.match(warnings[0]?.message ?? '', /^rule shared names x-amz-tagging without a pattern, so any value passes and x-amz-tagging sets tags, .*: give it a pattern$/)
  })
})
