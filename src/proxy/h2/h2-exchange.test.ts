import { strict as assert } from 'node:assert'
import { once } from 'node:events'
import { connect, createServer, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import { setFlagsFromString } from 'node:v8'
import { h2Request } from './h2-exchange.ts'

// V8's own answer to whether an object is in fast mode (not a dictionary): a native of V8's, allowed from here on.
setFlagsFromString('--allow-natives-syntax')
const hasFastProperties = new Function('object', 'return %HasFastProperties(object)') as (object: object) => boolean

test('a stream dressed as the pipeline\'s request: its header fields as Node gave them, inheriting nothing, in an object V8 reads in fast mode', async (t) => {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.after(() => server.close())
  const client = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
  t.after(() => client.destroy())
  const begun = once(server, 'stream') as Promise<[ServerHttp2Stream, IncomingHttpHeaders]>
  client.request({ ':path': '/items/1?x=1', 'user-agent': 'sdk/1.0', accept: 'application/json', 'x-request-id': 'r1' }).end()
  const [stream, nodeHeaders] = await begun
  const req = h2Request(stream, nodeHeaders)
  stream.respond({ ':status': 204 }, { endStream: true })

  assert.deepEqual(Object.entries(req.headers), Object.entries(nodeHeaders))
  assert.equal(req.method, 'GET')
  assert.equal(req.url, '/items/1?x=1')
  // Nothing inherited: a field named like an Object.prototype member is only ever the client's.
  assert.equal(req.headers.constructor, undefined)
  assert.equal('toString' in req.headers, false)
  // Node's own object is a dictionary (V8 keeps null-prototype literals so); the pipeline reads the copy, in fast mode.
  assert.equal(hasFastProperties(req.headers), true)
})
