import assert from 'node:assert/strict'
import { connect, createServer, type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2'
import net, { type AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { H2HeaderInspector } from './h2-header-inspector.ts'
import { HpackDecoder } from './hpack-decoder.ts'

/**
 * The decoder against a real encoder: Node's HTTP/2 client (nghttp2's deflater, Huffman coding and
 * dynamic-table indexing as it chooses) sends requests through a TCP relay that keeps every byte
 * it sends, to Node's HTTP/2 server. What the decoder reads from those bytes must be, stream by
 * stream and field by field, what the server received.
 */
describe('HpackDecoder against nghttp2 encoding, on the wire', () => {
  const received = new Map<number, string[]>()
  const wire: Buffer[] = []
  const server = createServer()
  let relay: net.Server
  let session: ClientHttp2Session

  before(async () => {
    server.on('stream', (stream, _headers, _flags, rawHeaders) => {
      if (stream.id !== undefined) received.set(stream.id, rawHeaders)
      stream.respond({ ':status': 200 })
      stream.end()
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const serverPort = (server.address() as AddressInfo).port
    relay = net.createServer((client) => {
      const upstream = net.connect(serverPort, '127.0.0.1')
      client.on('data', (chunk: Buffer) => {
        wire.push(chunk)
        upstream.write(chunk)
      })
      upstream.pipe(client)
      client.on('close', () => upstream.destroy())
      upstream.on('close', () => client.destroy())
    })
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve))
    session = connect(`http://127.0.0.1:${(relay.address() as AddressInfo).port}`)
  })
  after(async () => {
    session.close()
    await new Promise((resolve) => relay.close(resolve))
    await new Promise((resolve) => server.close(resolve))
  })

  function request(headers: OutgoingHttpHeaders): Promise<void> {
    return new Promise((resolve, reject) => {
      const stream = session.request(headers, { endStream: true })
      stream.on('response', () => stream.resume())
      stream.on('close', resolve)
      stream.on('error', reject)
    })
  }

  /** Every valid value byte (RFC 9113 §8.2.1), so that every Huffman code of them is exercised. */
  const everyByte = Array.from({ length: 256 }, (_, b) => b).filter((b) => b === 0x09 || (b >= 0x20 && b !== 0x7f)).map((b) => String.fromCharCode(b)).join('').trim()

  it('decodes, stream by stream, what the server received: Huffman, indexed fields, evictions, never-indexed fields', async () => {
    for (let i = 0; i < 40; i++) {
      await request({
        ':method': i % 3 === 0 ? 'POST' : 'GET',
        ':path': `/items/${i}?q=${'x'.repeat(i)}`,
        'user-agent': 'oracle/1.0',
        accept: 'application/json',
        'x-repeated': 'the same value on every request, indexed once',
        'x-counter': String(i),
        'x-every-byte': i % 5 === 0 ? everyByte : 'short',
        // Large and changing: each evicts older entries from the 4096-byte table.
        'x-large': `${i}`.padEnd(900 + i * 10, String.fromCharCode(97 + (i % 26))),
        cookie: [`a=${i}`, 'b=2'],
        authorization: `Bearer secret-${i}`,
        [`x-name-${i % 7}`]: `v${i}`,
      })
    }
    const decoded = decodeWire(Buffer.concat(wire))
    assert.equal(decoded.size, 40)
    for (const [streamId, fields] of decoded) {
      const raw = received.get(streamId)
      assert.ok(raw !== undefined, `stream ${streamId} reached the server`)
      assert.deepEqual(fields.flat(), raw, `stream ${streamId}`)
    }
  })

  it('the inspector, fed the same bytes at every chunk size, refuses none of these streams and stays in step', () => {
    const bytes = Buffer.concat(wire)
    for (const size of [1, 7, 100, 1500, bytes.length]) {
      const inspector = new H2HeaderInspector({ headerTableSize: 4096, maxFrameSize: 16_384, maxHeaderListBytes: 65_536, maxHeaderListPairs: 128 })
      for (let at = 0; at < bytes.length; at += size) inspector.inspect(bytes.subarray(at, at + size))
      assert.equal(inspector.lost, false, `chunks of ${size}`)
      for (const id of received.keys()) assert.equal(inspector.begin(id), undefined)
    }
  })
})

/** The client's header blocks, walked frame by frame after the preface (Node's client neither pads nor prioritises them). */
function decodeWire(bytes: Buffer): Map<number, [string, string][]> {
  const decoder = new HpackDecoder()
  const streams = new Map<number, [string, string][]>()
  let pos = 24
  while (pos + 9 <= bytes.length) {
    const length = bytes.readUIntBE(pos, 3)
    const type = bytes[pos + 3]
    const flags = bytes[pos + 4] ?? 0
    const streamId = bytes.readUInt32BE(pos + 5) & 0x7fffffff
    const payload = bytes.subarray(pos + 9, pos + 9 + length)
    pos += 9 + length
    if (type !== 0x1 && type !== 0x9) continue
    assert.equal(flags & 0x28, 0, 'no padding or priority')
    const fields = streams.get(streamId) ?? []
    streams.set(streamId, fields)
    decoder.write(payload, (name, value) => fields.push([name, value]))
    if ((flags & 0x4) !== 0) decoder.end()
  }
  return streams
}
