import { randomBytes, type KeyObject } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createServer, type Server } from 'node:https'
import { jwtVerify } from 'jose'

export type Access = 'read' | 'write' | 'admin'
const RANK: Record<Access, number> = { read: 0, write: 1, admin: 2 }

export interface InstallationToken {
  readonly token: string
  readonly installationId: number
  /** owner/name of every repository the token may reach. */
  readonly repositories: readonly string[]
  readonly permissions: Readonly<Record<string, Access>>
  readonly expiresAt: number
  revoked: boolean
}

export interface MintAttempt {
  readonly installationId: number
  readonly body: unknown
  /** The verified JWT claims (undefined when verification failed). */
  readonly claims: Record<string, unknown> | undefined
  readonly status: number
  readonly token: InstallationToken | undefined
}

export interface ApiRequest {
  readonly method: string
  readonly url: string
  readonly authorization: string | undefined
  readonly body: string
  status: number
}

export interface GitHubServer {
  readonly url: string
  /** Every POST to /app/installations/:id/access_tokens, in order (also the refused ones). */
  readonly mints: MintAttempt[]
  /** Every other request (the REST API). */
  readonly received: ApiRequest[]
  /** Lifetime of the tokens minted from now on. */
  ttlMs: number
  /** When set, the next mint is answered with this status (GitHub having an outage), then it is cleared. */
  failNextMint: number | undefined
  /**
   * The shared check of an installation token, as GitHub makes it on the API and on git: 401 for a
   * token it never minted, expired or revoked; 403 when the token does not cover `repository`
   * (owner/name) with at least `level` of `permission`; 200 when it does.
   */
  check(token: string | undefined, repository: string, permission: string, level: Access): 200 | 401 | 403
  /** The token of `Authorization: Bearer|token <t>` or `Basic x-access-token:<t>`. */
  tokenOf(authorization: string | undefined): string | undefined
  /** Revokes every token minted so far (GitHub's DELETE /installation/token, or a key rotation). */
  revokeAll(): void
  close(): Promise<void>
}

/**
 * A stand-in for GitHub's App API over HTTPS on 127.0.0.1:0. The token endpoint verifies the App
 * JWT with jose against the App's public key (RS256, iss = app id, iat not ahead, exp at most ten
 * minutes ahead), checks that the installation exists, that the repositories asked for are in it
 * and that the permissions asked for are within the App's, and answers like GitHub (201 with
 * token, expires_at, permissions, repositories; 401/404/422 with a message). The REST endpoints
 * `GET /repos/:owner/:repo` (metadata: read; its answer echoes the Authorization header it got, so
 * tests can see keyvalet mask it) and `POST /repos/:owner/:repo/issues` (issues: write) accept only
 * tokens it minted, within their scope. `clock` is shared with keyvalet so tests can move time.
 */
export async function startGitHubServer(opts: {
  tls: { key: string; cert: string }
  app: { id: number; publicKey: KeyObject; permissions: Record<string, Access> }
  installations: { id: number; account: string; repositories: string[] }[]
  clock: () => number
}): Promise<GitHubServer> {
  const tokens = new Map<string, InstallationToken>()
  const mints: MintAttempt[] = []
  const received: ApiRequest[] = []
  const state: { ttlMs: number; failNextMint: number | undefined } = { ttlMs: 3_600_000, failNextMint: undefined }

  const check: GitHubServer['check'] = (token, repository, permission, level) => {
    const t = token === undefined ? undefined : tokens.get(token)
    if (t === undefined || t.revoked || t.expiresAt <= opts.clock()) return 401
    const granted = t.permissions[permission]
    if (!t.repositories.includes(repository) || granted === undefined || RANK[granted] < RANK[level]) return 403
    return 200
  }

  const tokenOf = (authorization: string | undefined): string | undefined => {
    const m = /^(?:Bearer|token) (\S+)$/i.exec(authorization ?? '')
    if (m !== null) return m[1]
    const basic = /^Basic (\S+)$/i.exec(authorization ?? '')
    const decoded = basic === null ? '' : Buffer.from(basic[1] ?? '', 'base64').toString('utf8')
    return decoded.startsWith('x-access-token:') ? decoded.slice('x-access-token:'.length) : undefined
  }

  async function mint(installationId: number, authorization: string | undefined, raw: string): Promise<{ status: number; body: unknown; attempt: Omit<MintAttempt, 'status' | 'body' | 'installationId'> }> {
    const jwt = /^Bearer (\S+)$/.exec(authorization ?? '')?.[1]
    let claims: Record<string, unknown> | undefined
    try {
      if (jwt === undefined) throw new Error('no bearer')
      const now = opts.clock()
      const verified = await jwtVerify(jwt, opts.app.publicKey, { algorithms: ['RS256'], issuer: String(opts.app.id), currentDate: new Date(now) })
      const { iat, exp } = verified.payload
      if (typeof iat !== 'number' || iat > now / 1000 + 1) throw new Error('iat ahead')
      if (typeof exp !== 'number' || exp > now / 1000 + 600) throw new Error('exp too far ahead')
      claims = verified.payload as Record<string, unknown>
    } catch {
      return { status: 401, body: { message: 'A JSON web token could not be decoded', documentation_url: 'https://docs.github.com/rest' }, attempt: { claims: undefined, token: undefined } }
    }
    const outage = state.failNextMint
    state.failNextMint = undefined
    if (outage !== undefined) return { status: outage, body: { message: 'Service Unavailable' }, attempt: { claims, token: undefined } }
    const installation = opts.installations.find((i) => i.id === installationId)
    if (installation === undefined) return { status: 404, body: { message: 'Not Found' }, attempt: { claims, token: undefined } }
    const body = JSON.parse(raw || '{}') as { repositories?: string[]; permissions?: Record<string, Access> }
    const names = body.repositories ?? installation.repositories
    if (!names.every((n) => installation.repositories.includes(n))) {
      return { status: 422, body: { message: 'There is at least one repository that does not exist or is not accessible to the parent installation.' }, attempt: { claims, token: undefined } }
    }
    const asked = body.permissions ?? opts.app.permissions
    for (const [name, level] of Object.entries(asked)) {
      const has = opts.app.permissions[name]
      if (has === undefined || RANK[has] < RANK[level]) return { status: 422, body: { message: 'The permissions requested are not granted to this installation.' }, attempt: { claims, token: undefined } }
    }
    const permissions = { ...asked, metadata: asked.metadata ?? 'read' }
    const token: InstallationToken = {
      token: `ghs_${randomBytes(18).toString('hex')}`,
      installationId,
      repositories: names.map((n) => `${installation.account}/${n}`),
      permissions,
      expiresAt: Math.floor((opts.clock() + state.ttlMs) / 1000) * 1000,
      revoked: false,
    }
    tokens.set(token.token, token)
    return {
      status: 201,
      body: {
        token: token.token,
        expires_at: new Date(token.expiresAt).toISOString().replace('.000Z', 'Z'),
        permissions,
        repository_selection: 'selected',
        repositories: names.map((name, i) => ({ id: 1000 + i, name, full_name: `${installation.account}/${name}` })),
      },
      attempt: { claims, token },
    }
  }

  const send = (res: ServerResponse, status: number, body: unknown): void => {
    const text = JSON.stringify(body)
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) })
    res.end(text)
  }

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8')
      const path = new URL(req.url ?? '/', 'https://api.invalid').pathname
      const minting = /^\/app\/installations\/(\d+)\/access_tokens$/.exec(path)
      if (minting !== null && req.method === 'POST') {
        const installationId = Number(minting[1])
        void mint(installationId, req.headers.authorization, raw).then(({ status, body, attempt }) => {
          mints.push({ installationId, body: raw === '' ? undefined : JSON.parse(raw), status, ...attempt })
          send(res, status, body)
        })
        return
      }
      const entry: ApiRequest = { method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization, body: raw, status: 0 }
      received.push(entry)
      const answer = (status: number, body: unknown): void => {
        entry.status = status
        send(res, status, body)
      }
      const repo = /^\/repos\/([^/]+)\/([^/]+)(\/issues)?$/.exec(path)
      if (repo === null || (repo[3] === undefined ? req.method !== 'GET' : req.method !== 'POST')) return answer(404, { message: 'Not Found' })
      const fullName = `${repo[1]}/${repo[2]}`
      const status = repo[3] === undefined
        ? check(tokenOf(req.headers.authorization), fullName, 'metadata', 'read')
        : check(tokenOf(req.headers.authorization), fullName, 'issues', 'write')
      if (status === 401) return answer(401, { message: 'Bad credentials' })
      if (status === 403) return answer(403, { message: 'Resource not accessible by integration' })
      if (repo[3] === undefined) return answer(200, { full_name: fullName, private: true, echoed_authorization: req.headers.authorization })
      return answer(201, { number: received.length, title: (JSON.parse(raw || '{}') as { title?: string }).title ?? '' })
    })
  }

  const server: Server = createServer(opts.tls, onRequest)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('GitHub stand-in has no address')
  return {
    url: `https://127.0.0.1:${address.port}`,
    mints,
    received,
    get ttlMs() {
      return state.ttlMs
    },
    set ttlMs(ms: number) {
      state.ttlMs = ms
    },
    get failNextMint() {
      return state.failNextMint
    },
    set failNextMint(status: number | undefined) {
      state.failNextMint = status
    },
    check,
    tokenOf,
    revokeAll() {
      for (const t of tokens.values()) t.revoked = true
    },
    close: () => new Promise((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  }
}
