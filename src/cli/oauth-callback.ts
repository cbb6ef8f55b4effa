import type { Server } from 'node:http'
import { createServer } from '../node-http.ts'
import { sameState } from '../credentials/oauth/pkce.ts'

/** What the authorization server sent back to the redirect URI for this flow. */
export type CallbackResult = { readonly code: string } | { readonly error: string }

export interface CallbackServer {
  /** http://127.0.0.1:<port>/callback (RFC 8252 §7.3: loopback IP, any port). */
  readonly redirectUri: string
  /** Resolves with the first redirect that carries this flow's `state`; redirects with another state are answered 400 and ignored. */
  readonly result: Promise<CallbackResult>
  close(): Promise<void>
}

const PAGE = (text: string) => `<!doctype html><meta charset="utf-8"><title>keyvalet</title><p>${text}</p>\n`

/**
 * A one-shot listener on 127.0.0.1 for the authorization redirect. Only GET /callback is answered;
 * a wrong or missing state never completes the flow (a page on another site may guess the port).
 */
export async function startCallbackServer(opts: { readonly port: number; readonly state: string; readonly onIgnored?: (why: string) => void }): Promise<CallbackServer> {
  let settle: (r: CallbackResult) => void = () => {}
  const result = new Promise<CallbackResult>((resolve) => (settle = resolve))
  let done = false
  const server: Server = createServer((req, res) => {
    const answer = (status: number, text: string): void => {
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' })
      res.end(PAGE(text))
    }
    // Node's parser lets through targets URL refuses (`http://[`): answered, never thrown out of the listener.
    const url = URL.parse(req.url ?? '/', 'http://127.0.0.1')
    if (url === null) return answer(400, 'Bad request.')
    if (req.method !== 'GET' || url.pathname !== '/callback') return answer(404, 'Not found.')
    if (done) return answer(409, 'This sign-in has already completed.')
    if (!sameState(opts.state, url.searchParams.get('state'))) {
      opts.onIgnored?.('a redirect with a wrong or missing state was ignored')
      return answer(400, 'This redirect does not belong to the running keyvalet oauth connect.')
    }
    done = true
    const code = url.searchParams.get('code')
    const error = url.searchParams.get('error')
    if (code !== null && code !== '') {
      settle({ code })
      return answer(200, 'Connected. You can close this window.')
    }
    settle({ error: error !== null && /^[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}$/.test(error) ? error : 'no_code' })
    return answer(400, 'The authorization server did not grant access. See the terminal.')
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, '127.0.0.1', () => resolve())
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('callback server has no address')
  return {
    redirectUri: `http://127.0.0.1:${address.port}/callback`,
    result,
    close: () => new Promise((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  }
}
