/**
 * Vault names no connector may inject and `secret set` may not write: `keyvalet.` holds
 * keyvalet's own keys (the interception CA, the audit and assertion keys), `oauth.` the users'
 * OAuth tokens that `keyvalet oauth connect` stores and the oauth_user source refreshes.
 */

/** keyvalet's own records: never an operator's secret, so `secret list` leaves them out unless asked. */
export function keyvaletOwn(name: string): boolean {
  return name.startsWith('keyvalet.')
}

/** The reason a name is reserved, or undefined when it is free for operators' secrets. */
export function reservedName(name: string): string | undefined {
  if (keyvaletOwn(name)) return 'secret names starting with keyvalet. are reserved for keyvalet itself'
  if (name.startsWith('oauth.')) return 'secret names starting with oauth. hold users\' OAuth tokens (keyvalet oauth connect manages them)'
  return undefined
}
