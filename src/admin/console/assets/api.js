// @ts-check
/**
 * The console's only back end is the admin API, called with the admin token in the Authorization
 * header. The token lives in this module's memory only (never in a cookie, localStorage or
 * sessionStorage): a reload or a closed tab logs out. As no credential is ever sent by the browser
 * on its own, another site cannot make a call on the operator's behalf (no CSRF).
 */

/** @type {string | undefined} */
let token

/** An admin API refusal: its stable code and the message it is safe to show. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }
}

/** @param {string | undefined} value */
export function setToken(value) {
  token = value
}

/**
 * One admin API call; resolves with the parsed JSON (or text) answer, rejects with an ApiError.
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<any>}
 */
export async function api(method, path, body) {
  /** @type {Record<string, string>} */
  const headers = {}
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(path, { method, headers, cache: 'no-store', credentials: 'omit', ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
  const text = await res.text()
  const json = (res.headers.get('content-type') ?? '').startsWith('application/json') && text !== '' ? JSON.parse(text) : undefined
  if (!res.ok && json?.error === undefined) throw new ApiError(res.status, `http_${res.status}`, `The admin API answered ${res.status}.`)
  if (!res.ok) throw new ApiError(res.status, String(json.error.code), String(json.error.message))
  return json ?? text
}

/**
 * `/v1/path?name=value…` with the empty values left out.
 * @param {string} path
 * @param {Record<string, string | number | undefined>} query
 */
export function withQuery(path, query) {
  const params = new URLSearchParams()
  for (const [name, value] of Object.entries(query)) if (value !== undefined && value !== '') params.set(name, String(value))
  const text = params.toString()
  return text === '' ? path : `${path}?${text}`
}
