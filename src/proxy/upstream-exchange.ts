import { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'

/** The upstream's response head and body, which forward puts on the context for the relay. */
export interface UpstreamResponse {
  readonly statusCode: number
  readonly headers: Dispatcher.ResponseData['headers']
  /** The response's trailers: empty until its body has ended (then those it ended with, if any). */
  readonly trailers: Record<string, string | string[] | undefined>
  /** UpstreamBody, or a stage's replacement for it (mcp.ts) that reads the same way. */
  readonly body: Readable & { dump(): Promise<void> }
}

/** A response body keyvalet does not read is read off and dropped up to this size (the connection is then reused), else cut. */
const DUMP_LIMIT = 128 * 1024

/**
 * The body of an upstream response, as undici hands it over, with backpressure: a chunk the
 * reader is not ready for pauses the upstream connection, reading resumes it. Destroying the body
 * before its end aborts the exchange (the connection is not reused). It always has a listener for
 * 'error': a failure is seen by the reader's own listeners, or in `errored` by whoever reads it
 * later; with none attached yet (the relay attaches its own after the stages that follow forward),
 * an upstream reset must not end the process.
 */
export class UpstreamBody extends Readable {
  readonly #controller: Dispatcher.DispatchController

  constructor(controller: Dispatcher.DispatchController) {
    super()
    this.#controller = controller
    this.on('error', ignore)
  }

  override _read(): void {
    this.#controller.resume()
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    if (!this.readableEnded && !this.#controller.aborted) this.#controller.abort(err ?? new BodyAbandoned())
    done(err)
  }

  /** Reads the body off and drops it (bounded: past DUMP_LIMIT it is destroyed); resolves once it is closed. */
  async dump(): Promise<void> {
    if (this.closed) return
    let read = 0
    await new Promise<void>((resolve) => {
      this.once('close', resolve)
      this.on('data', (chunk: Buffer) => {
        read += chunk.length
        if (read > DUMP_LIMIT) this.destroy()
      })
    })
  }
}

/** Why a body destroyed before its end, with no error of its own, aborted its exchange. */
class BodyAbandoned extends Error {
  override readonly name = 'BodyAbandoned'
  readonly code = 'UND_ERR_ABORTED'
  constructor() {
    super('the response body was abandoned before its end')
  }
}

/**
 * Sends one request on `dispatcher` and resolves with the response once its head has arrived (a 1xx
 * head is passed over); rejects with the failure before that, or with `signal`'s reason when it
 * aborts first. An abort after the head destroys the body with that reason.
 *
 * This is undici's own `request` without what keyvalet does not use (opaque, context, raw headers,
 * the async-hooks resource), on undici's dispatch-handler API. Measured on a paced load
 * (bench/alloc-profile.ts --rate), `request`'s handler left ~3 KiB per request to be promoted to
 * the old generation (each a garbage that only a full collection frees; every few seconds one took
 * 10–17 ms at 1,000 requests/s): the function literal it assigns to a property of itself
 * (`this.abort = (reason) => …`) is one V8 allocates in the old generation, and through it every
 * object of the exchange outlived young collections. Here no such closure is made (see #onAbort;
 * test/pretenured-closures.test.ts).
 */
export function sendUpstream(dispatcher: Dispatcher, options: Dispatcher.DispatchOptions, signal: AbortSignal): Promise<UpstreamResponse> {
  return new Promise<UpstreamResponse>((resolve, reject) => {
    const exchange = new UpstreamExchange(resolve, reject, signal, options.body)
    try {
      dispatcher.dispatch(options, exchange)
    } catch (err) {
      exchange.onResponseError(undefined, err as Error)
    }
  })
}

class UpstreamExchange implements Dispatcher.DispatchHandler {
  readonly #resolve: (response: UpstreamResponse) => void
  readonly #reject: (err: Error) => void
  readonly #signal: AbortSignal
  #requestBody: Dispatcher.DispatchOptions['body']
  #controller: Dispatcher.DispatchController | undefined
  #body: UpstreamBody | undefined
  #trailers: Record<string, string | string[] | undefined> = {}
  #settled = false
  #listening = false

  constructor(resolve: (response: UpstreamResponse) => void, reject: (err: Error) => void, signal: AbortSignal, requestBody: Dispatcher.DispatchOptions['body']) {
    this.#resolve = resolve
    this.#reject = reject
    this.#signal = signal
    this.#requestBody = requestBody
    if (!signal.aborted) {
      signal.addEventListener('abort', this.#onAbort, { once: true })
      this.#listening = true
    }
  }

  /**
   * The signal's 'abort': what the exchange has reached is cut with its reason. One still waiting
   * for a connection is answered at once; undici aborts it when it would start (onRequestStart).
   * A class field: a function literal assigned to a property in a method would be allocated in the
   * old generation (V8 pretenures it), keeping the exchange alive until a full collection.
   */
  readonly #onAbort = (): void => {
    this.#listening = false
    const reason = this.#signal.reason as Error
    if (this.#body !== undefined) this.#body.destroy(reason)
    else if (this.#controller !== undefined) this.#controller.abort(reason)
    else if (!this.#settled) {
      this.#settled = true
      this.#reject(reason)
    }
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller
    if (this.#signal.aborted) controller.abort(this.#signal.reason as Error)
  }

  onRequestUpgrade(controller: Dispatcher.DispatchController): void {
    controller.abort(new Error('the upstream switched protocols on a request that did not ask it to'))
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Dispatcher.ResponseData['headers']): void {
    if (statusCode < 200) return
    const body = new UpstreamBody(controller)
    this.#body = body
    this.#settled = true
    this.#resolve({ statusCode, headers, trailers: this.#trailers, body })
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#body?.push(chunk) === false) controller.pause()
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: Record<string, string | string[] | undefined>): void {
    this.#stopListening()
    this.#requestBody = undefined
    // Copied onto the object the response already holds; '__proto__' as a name is a field, not a prototype.
    if (trailers !== null && typeof trailers === 'object') {
      for (const name of Object.keys(trailers)) Object.defineProperty(this.#trailers, name, { value: trailers[name], enumerable: true, configurable: true, writable: true })
    }
    this.#body?.push(null)
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    this.#stopListening()
    const requestBody = this.#requestBody
    this.#requestBody = undefined
    if (requestBody instanceof Readable && !requestBody.destroyed) {
      requestBody.on('error', ignore)
      requestBody.destroy(err)
    }
    if (!this.#settled) {
      this.#settled = true
      this.#reject(err)
    } else if (this.#body !== undefined && !this.#body.destroyed) {
      this.#body.destroy(err)
    }
  }

  #stopListening(): void {
    if (!this.#listening) return
    this.#listening = false
    this.#signal.removeEventListener('abort', this.#onAbort)
  }
}

function ignore(): void {}
