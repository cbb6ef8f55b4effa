import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { test } from 'node:test'
import { startCallbackServer } from './oauth-callback.ts'
import { freePort } from '../../test/helpers/ports.ts'

/** One raw request line on a fresh connection; the status line of the answer. */
function statusOf(port: number, requestLine: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(`${requestLine}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`))
    let text = ''
    socket.on('data', (c: Buffer) => { text += c.toString('latin1') })
    socket.on('end', () => resolve(text.split('\r\n')[0] ?? ''))
    socket.on('error', reject)
  })
}

test('a request target URL cannot parse is answered 400; the listener lives on and completes the flow', async () => {
  const port = await freePort()
  const server = await startCallbackServer({ port, state: 'st4te' })
  try {
    assert.equal(await statusOf(port, 'GET http://[ HTTP/1.1'), 'HTTP/1.1 400 Bad Request')
    assert.equal(await statusOf(port, 'GET /callback?state=st4te&code=c0de HTTP/1.1'), 'HTTP/1.1 200 OK')
    assert.deepEqual(await server.result, { code: 'c0de' })
  } finally {
    await server.close()
  }
})
