import assert from 'node:assert/strict'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { connect, createServer, type Server } from 'node:tls'
import { after, before, describe, it } from 'node:test'
import { upstreamTls } from './dispatch.ts'
import { upstreamCertificate } from '../../test/helpers/tls.ts'

/** Whether a TLS handshake with `tls`'s options verifies the server on `port` as 127.0.0.1. */
async function verifies(port: number, tls: ReturnType<typeof upstreamTls>): Promise<boolean> {
  const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ...tls })
  const verified = await new Promise<boolean>((resolve) => {
    socket.once('secureConnect', () => resolve(true))
    socket.once('error', () => resolve(false))
  })
  socket.destroy()
  return verified
}

describe('upstreamTls', () => {
  const first = upstreamCertificate('localhost')
  const second = upstreamCertificate('localhost')
  const servers: Server[] = []
  const ports: number[] = []

  before(async () => {
    for (const pki of [first, second]) {
      const server = createServer(pki.tls, (socket) => socket.end())
      server.listen(0, '127.0.0.1')
      await once(server, 'listening')
      servers.push(server)
      ports.push((server.address() as AddressInfo).port)
    }
  })
  after(() => {
    for (const server of servers) server.close()
  })

  it('gives connectors that name the same CA one secure context, and one that names another CA its own', () => {
    const a = upstreamTls({ ca: first.caPem })
    const b = upstreamTls({ ca: `${first.caPem}` })
    const c = upstreamTls({ ca: second.caPem })
    assert.ok(a.secureContext !== undefined && c.secureContext !== undefined)
    assert.equal(a.secureContext, b.secureContext)
    assert.notEqual(a.secureContext, c.secureContext)
    assert.equal(upstreamTls({ ca: undefined }).secureContext, undefined, 'no extra CA: the system roots, no context of its own')
  })

  it('a shared context trusts its own CA and not another connector\'s', async () => {
    const [firstPort, secondPort] = ports as [number, number]
    assert.equal(await verifies(firstPort, upstreamTls({ ca: first.caPem })), true)
    assert.equal(await verifies(secondPort, upstreamTls({ ca: first.caPem })), false)
    assert.equal(await verifies(secondPort, upstreamTls({ ca: second.caPem })), true)
    assert.equal(await verifies(firstPort, upstreamTls({ ca: second.caPem })), false)
    assert.equal(await verifies(firstPort, upstreamTls({ ca: undefined })), false, 'a private CA is never trusted without being named')
  })
})
