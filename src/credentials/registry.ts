import type { InjectKind } from '../model/policy.ts'
import type { CredentialKind } from './kind.ts'
import { basic } from './kinds/basic.ts'
import { bearer } from './kinds/bearer.ts'
import { header } from './kinds/header.ts'
import { query } from './kinds/query.ts'
import { awsSigv4 } from './kinds/aws-sigv4.ts'

/** Every credential kind keyvalet knows: one line per kind. */
export const CREDENTIAL_KINDS: Readonly<Record<InjectKind, CredentialKind>> = { bearer, basic, header, query, aws_sigv4: awsSigv4 }
