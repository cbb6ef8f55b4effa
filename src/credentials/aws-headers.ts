import type { HeaderGuard } from '../model/policy.ts'

/**
 * The x-amz-* request headers of S3 — PutObject, CopyObject, CreateMultipartUpload, UploadPart(Copy),
 * CompleteMultipartUpload, Get/HeadObject, ListObjectsV2, DeleteObject(s), RenameObject and the
 * bucket and object sub-resource calls — each decided once, and what the other SigV4 services
 * put in x-amz-* headers.
 *
 * A header either passes (it frames, signs or checks the request, or it is the object's own data,
 * which the rule already lets the sandbox write), or it changes who can read the object or what AWS
 * does with it, and then a request carrying it fits a rule only when the rule names it under
 * `headers` (policy/decide.ts: header_not_named). An x-amz-* header this table does not know is
 * treated as the second kind: deny by default, so a header AWS adds later does not pass unseen.
 * A name ending in '*' covers every header it prefixes; the longest entry that matches wins.
 */
const AWS_HEADERS: readonly (readonly [header: string, effect: 'passes' | 'named', does: string])[] = [
  // Framing and signing: keyvalet removes or re-signs what the sandbox signed with (kinds/aws-sigv4.ts).
  ['x-amz-date', 'passes', 'dates the signature (replaced by keyvalet)'],
  ['x-amz-security-token', 'passes', 'carries a session token (replaced by keyvalet)'],
  ['x-amz-content-sha256', 'passes', 'names the payload hash or streaming mode keyvalet signs'],
  ['x-amz-decoded-content-length', 'passes', 'frames an aws-chunked body'],
  ['x-amz-trailer', 'passes', 'names the trailing checksum of an aws-chunked body (kinds/aws-sigv4.ts refuses any other trailer)'],
  ['x-amz-user-agent', 'passes', 'names the SDK'],
  ['x-amz-sdk-checksum-algorithm', 'passes', 'names the integrity checksum'],
  ['x-amz-checksum-*', 'passes', 'carries or asks for an integrity checksum'],
  // Conditions: they can only make a request fail.
  ['x-amz-expected-bucket-owner', 'passes', 'fails the request unless the bucket has this owner'],
  ['x-amz-source-expected-bucket-owner', 'passes', 'fails a copy unless the source bucket has this owner'],
  ['x-amz-copy-source-if-*', 'passes', 'fails a copy unless the source matches'],
  ['x-amz-rename-source-if-*', 'passes', 'fails a rename unless the source matches'],
  ['x-amz-if-*', 'passes', 'fails the request unless the object matches'],
  // The object's own data and what to read: the rule's path and method already cover them.
  ['x-amz-meta-*', 'passes', 'is user metadata of the object'],
  ['x-amz-metadata-directive', 'passes', "says whether a copy keeps the source's metadata"],
  ['x-amz-copy-source', 'passes', 'names the copy source, which keyvalet decides as a GET of it (proxy/stages/copy-source.ts)'],
  ['x-amz-copy-source-range', 'passes', 'names the byte range of the copy source'],
  ['x-amz-copy-source-server-side-encryption-customer-*', 'passes', 'unlocks an SSE-C copy source with a key the sandbox already holds'],
  ['x-amz-mp-object-size', 'passes', 'checks the size of a completed multipart upload'],
  ['x-amz-write-offset-bytes', 'passes', 'appends at an offset of an object the rule lets the sandbox write'],
  ['x-amz-object-attributes', 'passes', 'selects which attributes GetObjectAttributes returns'],
  ['x-amz-optional-object-attributes', 'passes', 'selects extra fields of a listing'],
  ['x-amz-max-parts', 'passes', 'pages GetObjectAttributes'],
  ['x-amz-part-number-marker', 'passes', 'pages GetObjectAttributes'],
  // Access: who else can read or change the object or bucket.
  ['x-amz-acl', 'named', 'sets a canned ACL (public-read makes the object readable by anyone)'],
  ['x-amz-grant-*', 'named', 'grants another account or group access'],
  ['x-amz-object-ownership', 'named', 'sets bucket ownership controls (ObjectWriter turns ACLs back on)'],
  ['x-amz-confirm-remove-self-bucket-access', 'named', "lets a bucket policy lock the account's own principal out"],
  // Meaning: what S3 does with the object.
  ['x-amz-website-redirect-location', 'named', 'makes the object a redirect to another URL on a website bucket'],
  ['x-amz-server-side-encryption*', 'named', 'chooses how the object is encrypted and with whose key (SSE-KMS key, SSE-C key the owner may not hold)'],
  ['x-amz-object-lock-*', 'named', 'locks the object against deletion, possibly for years and irrevocably (compliance mode)'],
  ['x-amz-bypass-governance-retention', 'named', 'deletes or shortens a governance-mode lock'],
  ['x-amz-bucket-object-lock-enabled', 'named', 'turns on object lock for a new bucket'],
  ['x-amz-bucket-object-lock-token', 'named', 'changes the object lock configuration of a bucket'],
  ['x-amz-mfa', 'named', 'passes an MFA code for MFA delete or versioning changes'],
  ['x-amz-tagging', 'named', 'sets tags, which tag-based access policies and lifecycle rules act on'],
  ['x-amz-tagging-directive', 'named', "replaces a copy's tags, which tag-based access policies and lifecycle rules act on"],
  ['x-amz-storage-class', 'named', 'chooses the storage class (GLACIER or DEEP_ARCHIVE objects cannot be read without a restore and bill a minimum duration)'],
  ['x-amz-request-payer', 'named', "accepts a requester-pays bucket's charges on the account's bill"],
  ['x-amz-rename-source', 'named', 'moves a second object, named in the header, that the path does not show'],
  // Other SigV4 services (DynamoDB, KMS, STS over JSON, ...): the action is a header, not the path.
  ['x-amz-target', 'named', "names the service action (e.g. DynamoDB_20120810.DeleteTable): pin it to the actions the rule is for"],
]

const EXACT = new Map(AWS_HEADERS.filter(([h]) => !h.endsWith('*')).map(([h, effect, does]) => [h, { effect, does }]))
/** Longest prefix first, so a narrower entry overrides a wider one. */
const PREFIXES = AWS_HEADERS.filter(([h]) => h.endsWith('*'))
  .map(([h, effect, does]) => ({ prefix: h.slice(0, -1), effect, does }))
  .sort((a, b) => b.prefix.length - a.prefix.length)

/** What an x-amz-* header does when a rule must name it; undefined when it passes (or is not x-amz-*). */
function guarded(name: string): string | undefined {
  if (!name.startsWith('x-amz-')) return undefined
  const entry = EXACT.get(name) ?? PREFIXES.find((p) => name.startsWith(p.prefix))
  if (entry === undefined) return 'is an x-amz-* header keyvalet does not know, so it may change what AWS does'
  return entry.effect === 'named' ? entry.does : undefined
}

/** The headers an aws_sigv4 connector's rules must name before a request may carry them. */
export const AWS_HEADER_GUARD: HeaderGuard = {
  guarded,
  names: AWS_HEADERS.filter(([, effect]) => effect === 'named').map(([h]) => h),
  others: 'any x-amz-* header keyvalet does not know',
}
