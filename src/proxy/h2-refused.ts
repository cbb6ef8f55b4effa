import type { ServerHttp2Session } from 'node:http2'

/**
 * Streams of one HTTP/2 connection that nghttp2 refused before keyvalet could see them: a header
 * block RFC 9113 §8.2-8.3 forbids (upper-case names, connection-specific fields, pseudo-headers
 * unknown, repeated or misplaced, CR/LF/NUL in a pseudo-header), a content-length the DATA
 * disagrees with, more streams or header bytes than `limits.h2_*` allow. Each is reset
 * (RST_STREAM) inside nghttp2 and never becomes a Node stream.
 *
 * Node 24 gives no per-stream hook for them: its invalid-frame callback calls JavaScript only for
 * fatal errors, its stream-close callback finds no JavaScript stream to tell, and no
 * diagnostics_channel message is published for a stream never created. What it does expose is
 * the session's `state.lastProcStreamID`, the stream whose HEADERS or DATA nghttp2 read last.
 * Every stream whose header block is accepted reaches 'stream' synchronously, before JavaScript
 * runs again, so at any point JavaScript runs:
 * - a stream id above the highest one begun was refused (`sample`, at the connection's end or
 *   idle timeout, while the session can still be read);
 * - a stream that begins with odd ids skipped since the last one accounted for tells that those
 *   were refused (`begun`): clients number their streams consecutively (RFC 9113 §5.1.1 allows
 *   gaps; a client that leaves one is recorded as if its streams had been refused).
 * Each finding is reported once, with the number of streams and the last one's id. Refusals
 * that end the connection itself (a session error) are the connection's record, not these.
 */
export class RefusedStreams {
  readonly #report: (streams: number, lastStream: number) => void
  #session: ServerHttp2Session | undefined
  /** The highest stream id accounted for: begun, or reported refused. Client ids are odd. */
  #highest = -1

  constructor(report: (streams: number, lastStream: number) => void) {
    this.#report = report
  }

  attach(session: ServerHttp2Session): void {
    this.#session = session
  }

  begun(id: number): void {
    if (id > this.#highest + 2) this.#report((id - this.#highest) / 2 - 1, id - 2)
    if (id > this.#highest) this.#highest = id
  }

  readonly sample = (): void => {
    const session = this.#session
    if (session === undefined || session.destroyed) return
    const last = session.state.lastProcStreamID ?? 0
    if (last <= 0 || last <= this.#highest) return
    this.#report((last - this.#highest) / 2, last)
    this.#highest = last
  }
}
