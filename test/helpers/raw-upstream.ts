import { createServer, type Server, type Socket } from 'node:net'

export interface RawUpstream {
  readonly url: string
  /** The request line of every request that arrived, in order. */
  readonly requests: string[]
  close(): Promise<void>
}

/**
 * A TCP server on 127.0.0.1:0 that speaks as much HTTP as a test wants and no more: it reads one
 * request head, then hands the socket to `answer` with the request target, which writes whatever
 * bytes (or resets, or stalls) the test needs. For upstreams that misbehave below what an HTTP
 * server library would let them do.
 */
export async function startRawUpstream(answer: (target: string, socket: Socket) => void): Promise<RawUpstream> {
  const requests: string[] = []
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    let head = ''
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1')
      const end = head.indexOf('\r\n\r\n')
      if (end < 0) {
        if (head.length > 64 * 1024) socket.destroy()
        return
      }
      socket.off('data', onData)
      const line = head.slice(0, head.indexOf('\r\n'))
      requests.push(line)
      answer(line.split(' ')[1] ?? '', socket)
    }
    socket.on('data', onData)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('raw upstream has no address')
  return {
    url: `http://127.0.0.1:${address.port}`,
    requests,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy()
      server.close(() => resolve())
    }),
  }
}
