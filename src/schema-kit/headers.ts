/** Headers a credential or a feature may not set: they steer the connection or the message framing, not the API. */
export const FORBIDDEN_HEADERS: ReadonlySet<string> = new Set(['host', 'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'content-length'])
