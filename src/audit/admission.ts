/**
 * Whether keyvalet may take new requests, shared between the proxy's thread and the audit thread
 * in one 32-bit word of shared memory: OPEN (-1) while the audit can promise each new request its
 * record, otherwise the number of requests refused since it could not. The proxy reads it on
 * every request at the cost of one atomic load — no message, no round trip. The audit thread
 * alone opens and closes it; the compare-and-swap below makes the count exact: every refusal is
 * counted in the outage it happened in, none is counted twice.
 */
export class Admission {
  static readonly OPEN = -1
  readonly #word: Int32Array

  /** A closed admission (nothing is admitted until the audit thread opens it). */
  static create(): Admission {
    return new Admission(new SharedArrayBuffer(4))
  }

  /** The shared word, to hand to the other thread (in workerData). */
  readonly buffer: SharedArrayBuffer

  /** The same word, seen from another thread. */
  constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer
    this.#word = new Int32Array(buffer)
  }

  get open(): boolean {
    return Atomics.load(this.#word, 0) === Admission.OPEN
  }

  /** Proxy side: true if a new request may go ahead; otherwise counts it as refused. */
  admit(): boolean {
    for (;;) {
      const seen = Atomics.load(this.#word, 0)
      if (seen === Admission.OPEN) return true
      if (seen === 0x7fffffff) return false // counted out: saturates rather than wraps
      if (Atomics.compareExchange(this.#word, 0, seen, seen + 1) === seen) return false
    }
  }

  /** Audit side: opens, returning how many requests were refused while closed. */
  reopen(): number {
    const refused = Atomics.exchange(this.#word, 0, Admission.OPEN)
    return refused === Admission.OPEN ? 0 : refused
  }

  /** Audit side: stops admitting; true if it was open. */
  close(): boolean {
    return Atomics.compareExchange(this.#word, 0, Admission.OPEN, 0) === Admission.OPEN
  }
}
