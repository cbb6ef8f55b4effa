import { KeyvaletError } from '../../errors.ts'
import { decide } from '../../policy/decide.ts'
import { normalisePath, splitTarget } from '../../policy/path.ts'
import type { Connector } from '../../model/policy.ts'
import type { Stage } from '../pipeline.ts'

/**
 * copy-source: S3's CopyObject and UploadPartCopy read a second object, named in
 * `x-amz-copy-source` (`bucket/key`, URL-encoded, optionally `?versionId=`), that the path the
 * rules decided on does not show. For an aws_sigv4 connector, that source must be readable under
 * the same rules and grant, as a GET of `/bucket/key` would be: else policy_denied. The decided
 * source goes on the context (and the audit record); the aws_sigv4 kind signs a copy only then.
 * Left out of the stage list of every other connector.
 */
export function createCopySource(connector: Connector): Stage | undefined {
  if (connector.credential?.kind !== 'aws_sigv4') return undefined
  return {
    name: 'copy-source',
    run(ctx) {
      const header = ctx.req.headers['x-amz-copy-source']
      if (header === undefined) return
      const refuse = (why: string): never => {
        throw new KeyvaletError('request_unsupported', { message: 'The x-amz-copy-source header is not a plain bucket/key; the request was refused.', detail: { why } })
      }
      if (Array.isArray(header) || header.length > 2048) refuse('aws_copy_source_invalid')
      if (connector.upstream.pathname !== '/') refuse('aws_copy_source_with_base_path')
      const { rawPath, rawQuery } = splitTarget(`/${String(header).replace(/^\//, '')}`)
      const versionOnly = rawQuery === '' || /^versionId=[^&]*$/.test(rawQuery)
      if (!versionOnly) refuse('aws_copy_source_query')
      const { segments } = normalisePath(rawPath)
      const decision = decide({ connector, grants: ctx.session.grants, method: 'GET', segments, query: new URLSearchParams(), headers: {} })
      const path = `/${segments.join('/')}`.slice(0, 512)
      if (decision.effect !== 'allow') {
        const reason = decision.effect === 'deny' ? decision.reason : 'body_not_allowed'
        throw new KeyvaletError('policy_denied', {
          message: `The copy source is outside the task grant: reading ${path.slice(0, 200)} is not allowed (copy_source_${reason}).`,
          detail: {
            reason: `copy_source_${reason}`, copy_source: path, rule: decision.effect === 'deny' ? (decision.rule?.id ?? null) : null,
            destination_rule: ctx.decision?.effect === 'allow' ? ctx.decision.rule.id : null,
          },
        })
      }
      ctx.copySource = { path, rule: decision.rule.id }
    },
  }
}
