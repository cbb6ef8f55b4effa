import { strict as assert } from 'node:assert'
import { once } from 'node:events'
import { connect, createServer as createH2Server, type ServerHttp2Stream } from 'node:http2'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { test } from 'node:test'
import { inspectedSocket } from './inspected-socket.ts'

/** Whether `bytes` is a run of whole HTTP/2 frames (RFC 9113 §4.1), a 9-byte header and its payload each. */
function wholeFrames(bytes: Buffer): boolean {
  let pos = 0
  while (pos + 9 <= bytes.length) pos += 9 + bytes.readUIntBE(pos, 3)
  return pos === bytes.length
}

test('node:http2 served through the inspected socket: every byte the client sent is inspected in order, each batch the session writes reaches the socket as one write of whole frames', async (t) => {
  const h2 = createH2Server()
  const body = 'x'.repeat(300)
  h2.on('stream', (stream: ServerHttp2Stream) => {
    stream.respond({ ':status': 200, 'content-type': 'text/plain' })
    stream.end(body)
  })
  const inspected: Buffer[] = []
  const received: Buffer[] = []
  const writes: Buffer[] = []
  const tcp = createServer((socket: Socket) => {
    socket.on('data', (chunk: Buffer) => received.push(chunk))
    const write = socket.write.bind(socket) as (chunk: Buffer, done?: (err?: Error | null) => void) => boolean
    socket.write = ((chunk: Buffer, done?: (err?: Error | null) => void) => {
      writes.push(Buffer.from(chunk))
      return write(chunk, done)
    }) as typeof socket.write
    h2.emit('connection', inspectedSocket(socket, (chunk) => inspected.push(Buffer.from(chunk))))
  })
  tcp.listen(0, '127.0.0.1')
  await once(tcp, 'listening')
  t.after(() => tcp.close())
  const client = connect(`http://127.0.0.1:${(tcp.address() as AddressInfo).port}`)
  t.after(() => client.destroy())
  // Streams answered in the same turn: the session writes their frames as one batch.
  const answers = await Promise.all(Array.from({ length: 8 }, async () => {
    const req = client.request({ ':path': '/items/1' })
    req.end()
    let text = ''
    for await (const chunk of req) text += String(chunk)
    return text
  }))
  assert.deepEqual(answers, Array.from({ length: 8 }, () => body))
  assert.deepEqual(Buffer.concat(inspected), Buffer.concat(received))
  assert.ok(writes.length > 0)
  for (const w of writes) assert.ok(wholeFrames(w), `a write of ${w.length} bytes that is not whole frames`)
  // The eight answers (HEADERS, and DATA: a frame header and its payload) left in fewer writes than streams.
  assert.ok(writes.length < 8, `${writes.length} writes`)
})
