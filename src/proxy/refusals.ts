import type { SandboxRequest, SandboxResponse } from './exchange.ts'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { AuditFields } from '../audit/record.ts'
import { KeyvaletError } from '../errors.ts'
import type { AnonymousAudit } from './anonymous-audit.ts'
import { auditFields, refusalFields } from './audit-fields.ts'
import type { IdleConnections } from './connections.ts'
import type { RequestContext } from './context.ts'
import type { Recorder } from './recorder.ts'
import { answerError, presentation, writeRawError } from './error-reply.ts'

/** How long a socket whose bytes the parser refused stays open: long enough to read the answer, which is written once audited. */
const REFUSED_SOCKET_LINGER_MS = 10_000

export interface RefusalInit {
  readonly mode: RequestContext['mode']
  readonly method: string
  readonly fields?: Partial<AuditFields>
}

export interface RefusalDeps {
  readonly recorder: Recorder
  readonly anonymous: AnonymousAudit
  readonly idle: IdleConnections
  readonly nextId: () => string
  readonly newContext: (req: SandboxRequest, init: { mode: RequestContext['mode'] }) => RequestContext
}

/**
 * What is decided outside the request stages — a request refused before them, a CONNECT, a
 * handshake, bytes the parser refused — audited, then answered, through the one Recorder.
 */
export function createRefusals(deps: RefusalDeps) {
  const { recorder, nextId } = deps

  /** Refuses a request before the pipeline (e.g. not a proxy request): audited, then answered. */
  async function reject(ctx: RequestContext, res: SandboxResponse, error: KeyvaletError): Promise<void> {
    const answer = (err: KeyvaletError): void => answerError(res, err, ctx.id, ctx.mode)
    if (!recorder.admit(answer)) return
    await recorder.settle(ctx.id, () => recorder.append(auditFields(ctx, error, presentation(ctx.mode, error).status), ctx.req.socket, ctx), () => answer(error))
  }

  /**
   * Writes a record, naming its session, whose outcome needs no answer from here (a tunnel opened,
   * a handshake refused); fails with the reason it was not written.
   */
  function record(fields: AuditFields): Promise<void> {
    return new Promise((resolve, reject) => {
      if (!recorder.admit(reject)) return
      void recorder.settle(fields.request_id, () => recorder.append(fields, null), (failure) => (failure === undefined ? resolve() : reject(failure)))
    })
  }

  /** A refusal before any stage ran (parser errors, CONNECT decisions): audited first, then answered on the raw socket. */
  function refuse(socket: Duplex, error: KeyvaletError, init: RefusalInit): void {
    const id = nextId()
    const answer = (err: KeyvaletError): void => writeRawError(socket, err, id, init.mode)
    if (!recorder.admit(answer)) return
    const fields = { ...refusalFields(id, init.method, error), mode: init.mode, status: presentation(init.mode, error).status, ...init.fields }
    void recorder.settle(id, () => recorder.append(fields, socket), () => answer(error))
  }

  /**
   * A listener's `clientError`: the parser refused what arrived (CL+TE smuggling, bad chunking,
   * oversized or slow headers). Answered and audited once per socket, however many chunks keep
   * arriving (Node reports the error again for each), unless a request of that socket is already
   * in the pipeline (it answers and audits itself; only the socket goes). The socket is cut
   * shortly after the answer, so a client that keeps sending cannot hold it.
   */
  const refusedSockets = new WeakSet<object>()
  function onClientError(mode: RequestContext['mode']) {
    return (err: Error & { code?: string }, socket: Duplex): void => {
      if (refusedSockets.has(socket)) return
      if (err.code === 'ECONNRESET' || !socket.writable || deps.idle.isBusy(socket)) return void socket.destroy()
      refusedSockets.add(socket)
      setTimeout(() => socket.destroy(), REFUSED_SOCKET_LINGER_MS).unref()
      const error = parserError(err)
      if (error.code === 'request_timeout' && (socket as Socket).bytesRead === 0) {
        // A connection that never sent a byte is no request: counted for the summary, never chained.
        deps.anonymous.idleConnection()
        return writeRawError(socket, error, nextId(), mode)
      }
      refuse(socket, error, { mode, method: '' })
    }
  }

  /**
   * A listener's `checkExpectation`: an Expect other than 100-continue (which node:http answers
   * itself). Left alone, node:http would answer 417 with no audit record; refused here instead.
   */
  function onUnsupportedExpectation(mode: RequestContext['mode']) {
    return (req: SandboxRequest, res: SandboxResponse): void => void reject(deps.newContext(req, { mode }), res, expectationRefused())
  }

  return { reject, record, refuse, onClientError, onUnsupportedExpectation }
}

/** The refusal of a request whose Expect header asks for anything but 100-continue. */
export function expectationRefused(): KeyvaletError {
  const message = 'The Expect header asks for something keyvalet does not do (only 100-continue); the request was refused.'
  return new KeyvaletError('header_invalid', { message, detail: { header: 'expect' } })
}

function parserError(err: Error & { code?: string }): KeyvaletError {
  const detail = { parser: err.code ?? 'unknown' }
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return new KeyvaletError('request_timeout', { detail })
  if (err.code === 'HPE_HEADER_OVERFLOW') return new KeyvaletError('request_malformed', { message: 'The request headers are too large.', detail })
  return new KeyvaletError('request_malformed', { detail })
}
