import { strict as assert } from 'node:assert'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, describe, test } from 'node:test'
import { Pool } from 'undici'
import { sendUpstream, type UpstreamResponse } from './upstream-exchange.ts'

/** A real upstream on 127.0.0.1:0: each request goes to `answer`; it records the path and the client port of each. */
async function upstream(answer: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ origin: string; seen: { path: string; port: number }[]; server: Server }> {
  const seen: { path: string; port: number }[] = []
  const server = createServer((req, res) => {
    seen.push({ path: req.url ?? '', port: req.socket.remotePort ?? 0 })
    answer(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  after(() => { server.closeAllConnections(); server.close() })
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server }
}

function pool(origin: string): Pool {
  const p = new Pool(origin, { connections: 1 })
  after(() => p.destroy())
  return p
}

const send = (p: Pool, origin: string, path: string, signal = new AbortController().signal): Promise<UpstreamResponse> =>
  sendUpstream(p, { origin, method: 'GET', path, headers: { 'x-probe': path } }, signal)

async function text(response: UpstreamResponse): Promise<string> {
  let out = ''
  for await (const chunk of response.body) out += String(chunk)
  return out
}

describe('sendUpstream: one request on an undici dispatcher, the response as the relay reads it', () => {
  test('resolves with the head, streams the body, and fills the trailers when the body ends', async () => {
    const up = await upstream((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum', 'x-echo': String(req.headers['x-probe']) })
      res.write('hello, ')
      setTimeout(() => {
        res.addTrailers({ 'x-checksum': 'abc123' })
        res.end('world')
      }, 50)
    })
    const response = await send(pool(up.origin), up.origin, '/greeting')
    assert.equal(response.statusCode, 200)
    assert.equal(response.headers['x-echo'], '/greeting')
    assert.deepEqual({ ...response.trailers }, {})
    assert.equal(await text(response), 'hello, world')
    assert.deepEqual({ ...response.trailers }, { 'x-checksum': 'abc123' })
    assert.deepEqual(up.seen.map((s) => s.path), ['/greeting'])
  })

  test('an abort while waiting for a connection rejects at once with its reason, and the request is never sent', async () => {
    let release: (() => void) | undefined
    let arrived: () => void = () => {}
    const slowArrived = new Promise<void>((resolve) => { arrived = resolve })
    const up = await upstream((req, res) => {
      if (req.url !== '/slow') return void res.end(req.url)
      release = () => res.end('slow')
      arrived()
    })
    const p = pool(up.origin)
    const slow = send(p, up.origin, '/slow')
    await slowArrived
    const gone = new AbortController()
    const queued = send(p, up.origin, '/queued', gone.signal)
    const reason = new Error('the sandbox left')
    gone.abort(reason)
    await assert.rejects(queued, (err) => err === reason)
    // The one connection is still busy: the rejection did not wait for it.
    assert.equal(typeof release, 'function')
    release?.()
    assert.equal(await text(await slow), 'slow')
    // Sent in order on the one connection: had /queued gone out, it would be before /after.
    assert.equal(await text(await send(p, up.origin, '/after')), '/after')
    assert.deepEqual(up.seen.map((s) => s.path), ['/slow', '/after'])
  })

  test('an abort after the head destroys the body with its reason and closes the upstream connection', async () => {
    let upstreamClosed: Promise<void> | undefined
    const up = await upstream((_req, res) => {
      upstreamClosed = new Promise((resolve) => res.once('close', resolve))
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write('data: first\n\n')
    })
    const gone = new AbortController()
    const response = await send(pool(up.origin), up.origin, '/events', gone.signal)
    const first = await new Promise<string>((resolve) => response.body.once('data', (chunk: Buffer) => resolve(String(chunk))))
    assert.equal(first, 'data: first\n\n')
    const reason = new Error('the sandbox left')
    gone.abort(reason)
    assert.equal(response.body.destroyed, true)
    assert.equal(response.body.errored, reason)
    await upstreamClosed
  })

  test('dump reads a small body off and the connection is reused; a body past its limit is cut and the connection closed', async () => {
    const up = await upstream((req, res) => {
      const size = req.url === '/large' ? 4 * 1024 * 1024 : 10_000
      res.writeHead(200, { 'content-length': String(size) })
      res.end(Buffer.alloc(size, 0x61))
    })
    const p = pool(up.origin)
    await (await send(p, up.origin, '/small')).body.dump()
    await (await send(p, up.origin, '/large')).body.dump()
    await (await send(p, up.origin, '/next')).body.dump()
    const [small, large, next] = up.seen
    assert.equal(large?.port, small?.port, 'the small body was read off: its connection carried the next request')
    assert.notEqual(next?.port, large?.port, 'the large body was cut: its connection was closed')
  })

  test('an upstream that fails after the head, before anyone reads the body, does not end the process: the body holds the error', async () => {
    const up = await upstream((_req, res) => {
      res.writeHead(200, { 'content-length': '100' })
      res.write('only ten b')
      setTimeout(() => res.socket?.destroy(), 20)
    })
    const response = await send(pool(up.origin), up.origin, '/cut')
    for (let i = 0; i < 200 && response.body.errored === null; i++) await new Promise((resolve) => setTimeout(resolve, 10))
    assert.equal((response.body.errored as NodeJS.ErrnoException | null)?.code, 'UND_ERR_SOCKET')
  })

  test('a failure before the head rejects with the dispatcher\'s own error', async () => {
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    await new Promise<void>((resolve) => server.close(() => resolve()))
    await assert.rejects(send(pool(origin), origin, '/nobody'), (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED')
  })
})
