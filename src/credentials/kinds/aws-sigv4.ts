import Type from 'typebox'
import { KeyvaletError } from '../../errors.ts'
import { defineKind, type CredentialKind, type OutboundRequest } from '../kind.ts'
import { ChunkResigner } from '../aws-chunks.ts'
import { EMPTY_SHA256, sha256Hex, sign, type AwsKeys } from '../sigv4.ts'
import { AWS_HEADER_GUARD } from '../aws-headers.ts'

/** The signing scope, and whether a streamed body of unknown hash may go as UNSIGNED-PAYLOAD. */
export interface AwsSigningOptions {
  readonly service: string
  readonly region: string
  readonly unsignedPayload: boolean
}

const scopeField = (what: string, example: string, description: string) =>
  Type.String({ pattern: '^[a-z0-9-]{1,63}$', errorMessage: `must be an AWS ${what} such as ${example}`, description })

const AWS_BLOCK = Type.Object({
  service: scopeField('signing name', 's3', 'The signing name, e.g. s3, sts, execute-api.'),
  region: scopeField('region', 'eu-west-1', 'The region, e.g. eu-west-1.'),
  unsigned_payload: Type.Optional(Type.Boolean({ default: false, description: 'When true, a streamed body that comes without x-amz-content-sha256 is signed as UNSIGNED-PAYLOAD (S3 accepts it over HTTPS); otherwise such a request is refused.' })),
}, {
  additionalProperties: false,
  description: 'For inject: aws_sigv4 (required): the signing scope. The secret is JSON {"access_key_id", "secret_access_key", "session_token"?}; see docs/credentials.md.',
})

/**
 * AWS SigV4 re-signing. The sandbox's SDK signs with dummy keys; keyvalet checks nothing of that
 * signature, removes everything it signed with (Authorization, x-amz-date, x-amz-security-token)
 * and signs the request again, as it will be sent, with the real keys and the connector's
 * service and region. The secret is JSON: {"access_key_id", "secret_access_key", "session_token"?}.
 * Only the signature goes on the wire, never the secret access key.
 */
export function createAwsSigv4(clock: () => number): CredentialKind {
  return defineKind({
    kind: 'aws_sigv4',
    summary: 'the request re-signed with AWS Signature V4 (see `aws`).',
    fields: { aws: Type.Optional(AWS_BLOCK) },
    required: ['aws'],
    compile: ({ aws }): AwsSigningOptions => ({ service: aws?.service ?? '', region: aws?.region ?? '', unsignedPayload: aws?.unsigned_payload === true }),
    slot: () => ({ header: 'authorization' }),
    headerGuard: AWS_HEADER_GUARD,
    inject(req, aws, secret) {
      const keys = parseKeys(secret)
      refusePresigned(req.query)
      if (req.copySourceDecided !== true) refuseCopySource(req.headers)
      refuseOtherTrailers(req.headers)
      const payloadHash = payloadHashFor(req, aws.unsignedPayload)
      delete req.headers['x-amz-date']
      delete req.headers['x-amz-security-token']
      delete req.headers['x-amz-content-sha256']
      if (payloadHash === SIGNED_CHUNKS) checkChunkedHeaders(req.headers)
      const signed = sign({ method: req.method, host: new URL(req.origin).host, path: req.path, query: req.query, headers: req.headers, payloadHash }, keys, aws, new Date(clock()))
      Object.assign(req.headers, signed.headers)
      // Each chunk's signature chains from this request's: the body is re-signed as it streams.
      if (payloadHash === SIGNED_CHUNKS) req.bodyRewriter = new ChunkResigner(signed.chunks)
    },
    echoValues(_options, secret) {
      const keys = parseKeys(secret)
      return [secret, keys.secretAccessKey, ...(keys.sessionToken === undefined ? [] : [keys.sessionToken])]
    },
  })
}

export const awsSigv4 = createAwsSigv4(Date.now)

const KEY_FIELDS = new Set(['access_key_id', 'secret_access_key', 'session_token'])
/** What an access key id may contain: it is written into the Credential= of the Authorization header. */
const ACCESS_KEY_ID = /^[A-Za-z0-9]{1,128}$/
const PRINTABLE = /^[\x21-\x7e]{1,4096}$/

/** The vault value as keys, or credential_unavailable (what is wrong goes to the audit detail, never the value). */
function parseKeys(secret: string): AwsKeys {
  const malformed = (why: string): KeyvaletError => new KeyvaletError('credential_unavailable', { detail: { why: 'aws_secret_malformed', problem: why } })
  let raw: unknown
  try {
    raw = JSON.parse(secret)
  } catch {
    throw malformed('not JSON')
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw malformed('not a JSON object')
  const fields = raw as Record<string, unknown>
  const unknown = Object.keys(fields).find((k) => !KEY_FIELDS.has(k))
  if (unknown !== undefined) throw malformed(`unknown field ${JSON.stringify(unknown.slice(0, 40))}`)
  const { access_key_id: id, secret_access_key: key, session_token: token } = fields
  if (typeof id !== 'string' || !ACCESS_KEY_ID.test(id)) throw malformed('access_key_id must be letters and digits')
  if (typeof key !== 'string' || !PRINTABLE.test(key)) throw malformed('secret_access_key must be a non-empty printable string')
  if (token !== undefined && (typeof token !== 'string' || !PRINTABLE.test(token))) throw malformed('session_token must be a non-empty printable string')
  return { accessKeyId: id, secretAccessKey: key, sessionToken: token }
}

const PRESIGN_PARAMS = new Set(['x-amz-signature', 'x-amz-credential', 'x-amz-algorithm', 'x-amz-security-token'])

/**
 * A presigned URL carries its signature in the query. keyvalet refuses it rather than strip it:
 * the query is part of what the rules decided on, and its parameters (X-Amz-Expires, signed
 * headers) mean something a header signature cannot keep. The SDK signs in headers unless asked
 * to presign, so this is a sandbox that built a URL for someone else to use.
 */
function refusePresigned(query: string): void {
  if (query === '') return
  for (const name of new URLSearchParams(query).keys()) {
    if (PRESIGN_PARAMS.has(name.toLowerCase())) {
      throw new KeyvaletError('request_unsupported', {
        message: 'Presigned URLs (X-Amz-Signature in the query) are not forwarded: send the request without presigning and keyvalet signs it.',
        detail: { why: 'aws_presigned_query', param: name },
      })
    }
  }
}

/**
 * CopyObject and UploadPartCopy read a second object, named in x-amz-copy-source, that the path
 * rules do not see: signing it undecided would let a grant on one prefix read any object the real
 * keys can. The copy-source stage decides it (a GET of the source under the same rules); a copy
 * it did not decide is refused here, so no path signs one unchecked.
 */
function refuseCopySource(headers: OutboundRequest['headers']): void {
  if (headers['x-amz-copy-source'] === undefined) return
  throw unsupported('x-amz-copy-source (CopyObject, UploadPartCopy) was not decided by the policy; the request was refused.', 'aws_copy_source')
}

const CHECKSUM_TRAILER = /^x-amz-checksum-[a-z0-9]{1,32}$/
/**
 * Trailing headers travel inside an aws-chunked body, where the rules do not look: x-amz-trailer
 * may name only the integrity checksums SDKs send there, never a header a rule must name.
 */
function refuseOtherTrailers(headers: OutboundRequest['headers']): void {
  const declared = headers['x-amz-trailer']
  if (declared === undefined) return
  const names = (Array.isArray(declared) ? declared.join(',') : declared).split(',').map((n) => n.trim().toLowerCase())
  if (names.every((n) => CHECKSUM_TRAILER.test(n))) return
  throw unsupported('x-amz-trailer may only name x-amz-checksum-* trailers.', 'aws_trailer_not_checksum')
}

const HEX_SHA256 = /^[0-9a-f]{64}$/i
/** aws-chunked with a signature per chunk (SDKs other than JavaScript v3 send it for streamed uploads). */
const SIGNED_CHUNKS = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD'

/** Signed chunks come as aws-chunked framing with the decoded length declared, as S3 requires. */
function checkChunkedHeaders(headers: OutboundRequest['headers']): void {
  const coding = String(headers['content-encoding'] ?? '').split(',').map((c) => c.trim().toLowerCase())
  if (!coding.includes('aws-chunked')) throw unsupported('x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD needs content-encoding: aws-chunked.', 'aws_chunked_missing')
  if (!/^\d{1,15}$/.test(String(headers['x-amz-decoded-content-length'] ?? ''))) throw unsupported('x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD needs x-amz-decoded-content-length.', 'aws_chunked_length_missing')
}
/** Literal payload markers whose body keyvalet can pass through unchanged. */
const PASS_THROUGH = new Set(['UNSIGNED-PAYLOAD', 'STREAMING-UNSIGNED-PAYLOAD-TRAILER'])

/**
 * The x-amz-content-sha256 to sign. The sandbox's own value is kept when it is a hex SHA-256:
 * keyvalet does not need to trust it, because the service hashes the body it receives and
 * refuses the request (XAmzContentSHA256Mismatch) when they differ — a lie only fails upstream.
 * UNSIGNED-PAYLOAD and STREAMING-UNSIGNED-PAYLOAD-TRAILER (aws-chunked with unsigned chunks and a
 * trailing checksum, what AWS SDK v3 sends for streamed PutObject) pass through with the body
 * untouched. Signed chunks (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) chain each chunk's signature
 * from the request's: keyvalet re-signs every chunk as the body streams (aws-chunks.ts). Signed
 * chunks with a signed trailer (...-TRAILER) are refused. Without a value, keyvalet
 * hashes a body it holds, uses the empty hash when there is no body, and signs a streamed body
 * as UNSIGNED-PAYLOAD only when the connector allows it.
 */
function payloadHashFor(req: OutboundRequest, unsignedPayload: boolean): string {
  const sent = req.headers['x-amz-content-sha256']
  if (Array.isArray(sent)) throw unsupported('x-amz-content-sha256 was sent more than once.', 'aws_payload_hash_repeated')
  if (sent !== undefined) {
    if (HEX_SHA256.test(sent)) return sent.toLowerCase()
    if (PASS_THROUGH.has(sent) || sent === SIGNED_CHUNKS) return sent
    if (sent.startsWith('STREAMING-')) {
      throw unsupported(`x-amz-content-sha256: ${sent.slice(0, 60)} (signed chunks with a signed trailer) is not supported: let the SDK send signed chunks without a trailer, unsigned chunks with a trailing checksum (AWS SDK v3 does by default) or a body hash.`, 'aws_signed_chunks')
    }
    throw unsupported('x-amz-content-sha256 must be a hex SHA-256, UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER or STREAMING-AWS4-HMAC-SHA256-PAYLOAD.', 'aws_payload_hash_invalid')
  }
  if (req.body !== undefined) return sha256Hex(req.body)
  if (req.bodyStreams !== true) return EMPTY_SHA256
  if (unsignedPayload) return 'UNSIGNED-PAYLOAD'
  throw unsupported('A streamed body needs x-amz-content-sha256 (its hash) from the client, or unsigned_payload: true on the connector.', 'aws_payload_hash_missing')
}

function unsupported(message: string, why: string): KeyvaletError {
  return new KeyvaletError('request_unsupported', { message, detail: { why } })
}
