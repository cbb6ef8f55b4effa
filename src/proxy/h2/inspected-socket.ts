import { Duplex } from 'node:stream'

/**
 * A connection as node:http2 reads it, each chunk the client sent shown to `inspect` before the
 * session has it. Bytes pass unchanged and in order both ways, what the client sent uncopied, and
 * each batch the session writes as one write of the socket. Backpressure holds: the socket is
 * paused while the session has not taken what was passed on, and a write completes when the
 * socket has written it. Ending and destroying go through to the socket and back.
 */
export function inspectedSocket(socket: Duplex, inspect: (chunk: Buffer) => void): Duplex {
  const inspected = new Duplex({
    read() {
      socket.resume()
    },
    write(chunk: Buffer, _encoding, done) {
      socket.write(chunk, done)
    },
    // What nghttp2 has queued comes as one batch (Node's JS stream corks it: ~3 buffers per
    // response, HEADERS, a DATA frame's header, its payload) and goes to the socket as one buffer:
    // TLS copies a batch of several into one buffer to encrypt it anyway (Node's TLSWrap), and
    // handed over one by one, each would cost the socket's own stream a write of its own.
    writev(chunks, done) {
      socket.write(Buffer.concat(chunks.map(({ chunk }) => chunk as Buffer)), done)
    },
    final(done) {
      socket.end()
      done()
    },
    destroy(err, done) {
      socket.destroy(err ?? undefined)
      done(err)
    },
  })
  socket.pause()
  socket.on('data', (chunk: Buffer) => {
    inspect(chunk)
    // What it read may have ended the connection (a rapid reset): then nothing more is passed on.
    if (inspected.destroyed) return
    if (!inspected.push(chunk)) socket.pause()
  })
  socket.once('end', () => inspected.push(null))
  socket.once('close', () => inspected.destroy())
  socket.on('error', (err) => inspected.destroy(err))
  return inspected
}
