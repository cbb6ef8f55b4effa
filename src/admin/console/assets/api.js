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
 * One admin API call; resolves with the parsed JSON (or text) answer, rejects with an ApiError
 * (or an AbortError once `signal` aborts: a long poll the page no longer wants).
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @param {AbortSignal} [signal]
 * @returns {Promise<any>}
 */
export async function api(method, path, body, signal) {
  /** @type {Record<string, string>} */
  const headers = {}
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(path, { method, headers, cache: 'no-store', credentials: 'omit', ...(signal === undefined ? {} : { signal }), ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
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

/**
 * Follows a server-sent event stream of the admin API (read with fetch, as EventSource cannot send
 * the Authorization header) until `signal` aborts or the stream ends; calls `onEvent` per event.
 * @param {string} path
 * @param {AbortSignal} signal
 * @param {(event: { type: string, id: string | undefined, data: string }) => void} onEvent
 * @param {() => void} onOpen called once the stream is open (records committed from then on arrive)
 */
export async function follow(path, signal, onEvent, onOpen) {
  /** @type {Record<string, string>} */
  const headers = { accept: 'text/event-stream' }
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  const res = await fetch(path, { headers, cache: 'no-store', credentials: 'omit', signal })
  if (!res.ok || res.body === null) {
    const json = await res.json().catch(() => undefined)
    throw new ApiError(res.status, String(json?.error?.code ?? `http_${res.status}`), String(json?.error?.message ?? `The admin API answered ${res.status}.`))
  }
  onOpen()
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
  let held = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    held += value
    let end
    while ((end = held.search(/\r?\n\r?\n/)) !== -1) {
      const block = held.slice(0, end)
      held = held.slice(end).replace(/^\r?\n\r?\n/, '')
      /** @type {{ type: string, id: string | undefined, data: string[] }} */
      const event = { type: 'message', id: undefined, data: [] }
      for (const line of block.split(/\r?\n/)) {
        const colon = line.indexOf(':')
        if (colon === 0) continue
        const [field, text] = colon === -1 ? [line, ''] : [line.slice(0, colon), line.slice(colon + 1).replace(/^ /, '')]
        if (field === 'event') event.type = text
        else if (field === 'id') event.id = text
        else if (field === 'data') event.data.push(text)
      }
      if (event.data.length > 0 || event.type !== 'message') onEvent({ type: event.type, id: event.id, data: event.data.join('\n') })
    }
  }
}
