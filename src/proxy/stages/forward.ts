import { Transform, type Readable } from 'node:stream'
import { KeyvaletError } from '../../errors.ts'
import type { OutboundContext } from '../context.ts'
import type { Policy } from '../../model/policy.ts'
import { BodyScanner } from '../body-scanner.ts'
import { requestCarriesBody } from '../headers.ts'
import type { BodyRewriter } from '../../credentials/kind.ts'
import { joinStreams } from '../join-streams.ts'
import type { Stage } from '../pipeline.ts'
import type { Upstreams } from '../upstreams.ts'
import { upstreamError } from '../upstream-errors.ts'
import { sendUpstream } from '../upstream-exchange.ts'

/**
 * forward: sends the decided request to the connector's upstream over its keep-alive pool and
 * waits for the response head. The request body streams (with backpressure) unless decide already
 * read it. Network failures map to stable codes (upstream-errors.ts); their details go to the
 * audit record only.
 */
export function createForward(upstreams: Upstreams, policy: Policy, headersTimeoutMs: number): Stage<OutboundContext> {
  const placeholders = [...policy.connectors.values()].flatMap((c) => (c.placeholder === undefined ? [] : [{ connector: c.name, value: c.placeholder }]))
  return {
    name: 'forward',
    async run(ctx) {
      const { connector, outbound } = ctx
      // A sandbox that left (or a connection that went idle) while earlier stages ran: nothing is sent.
      const { signal, cut } = ctx
      if (signal === undefined || cut === undefined) throw new Error('forward runs under the handler, which gives each request its signal')
      signal.throwIfAborted()
      // Bounded: waiting for a free upstream connection and for the answer's head take at most
      // the upstream timeout — except once a streamed body has started to arrive, when undici's
      // own headersTimeout (counted from the end of the body) takes over, so slow uploads are not
      // cut. The timeout cuts the request as the sandbox leaving does: through the request's own
      // signal, which the exchange watches (no controller of its own that an open stream would keep).
      let timer: NodeJS.Timeout | undefined
      // Before the timer: a body refused here (a placeholder in it, bad framing) leaves nothing running.
      const body = requestBody(ctx, outbound.headers, () => new BodyScanner(placeholders), () => clearTimeout(timer), outbound.bodyRewriter)
      timer = setTimeout(() => cut(new KeyvaletError('upstream_timeout', { detail: { why: 'no_response_head' } })), headersTimeoutMs)
      const sentAt = performance.now()
      try {
        const dispatcher = await upstreams.dispatcher(connector)
        ctx.upstream = await sendUpstream(dispatcher, {
          origin: connector.upstream.origin,
          method: ctx.req.method ?? 'GET',
          path: outbound.query === '' ? ctx.path : `${ctx.path}?${outbound.query}`,
          headers: outbound.headers,
          body,
        }, signal)
      } catch (err) {
        throw upstreamError(signal.aborted ? signal.reason : err)
      } finally {
        clearTimeout(timer)
        ctx.upstreamMs = (ctx.upstreamMs ?? 0) + (performance.now() - sentAt)
      }
    },
  }
}

/**
 * The body to send: the one decide holds, or the sandbox's as it streams (backpressure kept),
 * scanned for placeholders and task keys, and through the kind's rewriter when it has one
 * (aws_sigv4 re-signing chunks; it keeps the length, so content-length stays the sandbox's).
 */
function requestBody(ctx: OutboundContext, headers: Record<string, string | string[]>, newScanner: () => BodyScanner, onFlowing: () => void, rewriter: BodyRewriter | undefined): Buffer | Readable | null {
  if (ctx.body !== undefined) {
    const refused = trailersRefusal(ctx.req)
    if (refused !== undefined) throw refused
    newScanner().scan(ctx.body)
    const body = rewriter === undefined ? ctx.body : rewriteWhole(rewriter, ctx.body)
    headers['content-length'] = String(body.length)
    ctx.bytesIn = ctx.body.length
    return body
  }
  const req = ctx.req
  const length = req.headers['content-length']
  if (length === undefined && !requestCarriesBody(req)) return null
  if (length !== undefined) headers['content-length'] = length
  const scanner = newScanner()
  // The chunk that completes a declared length waits for the body's end, which follows at once:
  // were the request to end in trailers, the upstream must not have had it whole (see flush).
  const declared = length === undefined ? Number.POSITIVE_INFINITY : Number(length)
  let held: Buffer[] = []
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      if (ctx.bytesIn === 0) onFlowing()
      ctx.bytesIn += chunk.length
      try {
        scanner.scan(chunk)
        const out = rewriter === undefined ? [chunk] : rewriter.push(chunk)
        if (ctx.bytesIn >= declared) held = held.concat(out)
        else for (const part of out) this.push(part)
        done()
      } catch (err) {
        // Aborts the upstream request before this chunk (or the end of the body) is sent.
        refuse(done, err)
      }
    },
    flush(done) {
      try {
        // Without a declared length the body goes chunked (HTTP/1.1) or without END_STREAM (HTTP/2) until here: refused now, it is never complete upstream.
        const refused = trailersRefusal(req)
        if (refused !== undefined) throw refused
        for (const part of held) this.push(part)
        rewriter?.end()
        done()
      } catch (err) {
        refuse(done, err)
      }
    },
  })
  // A client that aborts mid-upload destroys `counted`, which aborts the upstream request. A body
  // refused (or an upstream gone) stops the sandbox's: an HTTP/1.1 request is destroyed (with its
  // connection when the body is incomplete); an HTTP/2 stream is only no longer read, since the
  // refusal is answered on it (the answer's own drain reads the rest off, bounded).
  // A sandbox that goes away mid-body (its connection closed, its HTTP/2 stream reset) is the
  // request's outcome, client_closed, whatever the upstream request then fails with (over HTTP/2
  // the stream's failure comes before the 'close' the handler hears it by). At once, not on the
  // next turn: Node ends a reset HTTP/2 stream's readable side after it reports the reset, and
  // that 'end', piped on, would end the upstream's body as if it were whole.
  const sandboxGone = (err: Error): void => void counted.destroy(new KeyvaletError('client_closed', { cause: err }))
  return joinStreams(req, counted, req.httpVersionMajor === 2 ? ignore : undefined, sandboxGone)
}

/**
 * Fails the body on the next turn, not in this one. An HTTP/2 upstream stream that undici destroys
 * in the same turn as it queued the stream's first DATA leaves Node 24's http2 client asking
 * nghttp2 for that stream's data forever (100 % CPU, nothing sent): a refusal decided on a body
 * that arrived in one read (a task key in its second chunk, trailers right after it) would do that.
 */
function refuse(done: (err: Error) => void, err: unknown): void {
  setImmediate(done, err as Error)
}

/**
 * Request trailers (an HTTP/2 HEADERS frame after the DATA, or an HTTP/1.1 chunked body's trailer
 * section) cannot be forwarded: undici sends none, over HTTP/1.1 or HTTP/2. A request that ends in
 * them is refused rather than sent without them, before the upstream has it whole.
 */
function trailersRefusal(req: OutboundContext['req']): KeyvaletError | undefined {
  const names = Object.keys(req.trailers ?? {})
  if (names.length === 0) return undefined
  return new KeyvaletError('request_unsupported', {
    message: 'keyvalet does not forward request trailers; send these fields as headers.',
    detail: { why: 'request_trailers', trailers: names.slice(0, 20).map((n) => n.slice(0, 64)) },
  })
}

function rewriteWhole(rewriter: BodyRewriter, body: Buffer): Buffer {
  const out = Buffer.concat(rewriter.push(body))
  rewriter.end()
  return out
}

function ignore(): void {}
