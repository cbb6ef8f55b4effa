/** Patterns the config schema and the credential sources' blocks share. */

import Type from 'typebox'

export const CONNECTOR_NAME = '^[a-z][a-z0-9-]{0,62}$'
export const SECRET_NAME = '^[a-z0-9][a-z0-9._-]{0,62}$'
export const RULE_ID = '^[a-z0-9][a-z0-9_.-]{0,62}$'
/** An HTTP token (RFC 9110), as used for header names. */
export const TOKEN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"

/** A vault secret field of a config block, with the error message load.ts shows. */
export const secretField = (description: string) => Type.String({
  pattern: SECRET_NAME,
  errorMessage: 'must be lower-case letters, digits, ".", "_" or "-", starting with a letter or digit (at most 63)',
  description,
})
