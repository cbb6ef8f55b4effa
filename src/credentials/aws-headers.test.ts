import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { AWS_HEADER_GUARD } from './aws-headers.ts'

describe('AWS_HEADER_GUARD: which x-amz-* headers a rule must name', () => {
  const named = (h: string): boolean => AWS_HEADER_GUARD.guarded(h) !== undefined

  it('guards the headers that change access or meaning, whole families included', () => {
    for (const h of [
      'x-amz-acl', 'x-amz-grant-read', 'x-amz-grant-full-control', 'x-amz-grant-write-acp', 'x-amz-website-redirect-location',
      'x-amz-server-side-encryption', 'x-amz-server-side-encryption-aws-kms-key-id', 'x-amz-server-side-encryption-customer-key',
      'x-amz-object-lock-mode', 'x-amz-object-lock-retain-until-date', 'x-amz-object-lock-legal-hold', 'x-amz-bypass-governance-retention',
      'x-amz-tagging', 'x-amz-tagging-directive', 'x-amz-storage-class', 'x-amz-request-payer', 'x-amz-object-ownership', 'x-amz-rename-source', 'x-amz-target',
    ]) assert.ok(named(h), h)
  })

  it('lets through framing, checksums, conditions, metadata and the decided copy source', () => {
    for (const h of [
      'x-amz-content-sha256', 'x-amz-decoded-content-length', 'x-amz-trailer', 'x-amz-sdk-checksum-algorithm', 'x-amz-checksum-crc32', 'x-amz-checksum-mode',
      'x-amz-expected-bucket-owner', 'x-amz-copy-source-if-match', 'x-amz-if-match-size', 'x-amz-meta-owner', 'x-amz-metadata-directive',
      'x-amz-copy-source', 'x-amz-copy-source-range', 'x-amz-copy-source-server-side-encryption-customer-key',
      'content-type', 'cache-control', 'authorization',
    ]) assert.equal(AWS_HEADER_GUARD.guarded(h), undefined, h)
  })

  it('guards an x-amz-* header it does not know (deny by default)', () => {
    assert.match(AWS_HEADER_GUARD.guarded('x-amz-some-future-header') ?? '', /does not know/)
  })

  it('lists the headers it guards by name, each of which it guards', () => {
    assert.ok(AWS_HEADER_GUARD.names.includes('x-amz-acl') && AWS_HEADER_GUARD.names.includes('x-amz-grant-*'))
    for (const h of AWS_HEADER_GUARD.names) assert.ok(named(h.replace(/\*$/, 'x')), h)
  })
})
