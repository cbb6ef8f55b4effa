import { chmodSync } from 'node:fs'
import { connect, createServer, type Server, type Socket } from 'node:net'

export interface SocketBridge {
  close(): Promise<void>
}

/**
 * keyvalet's end of the sandbox's only link: a Unix socket at `path` (bound into the sandbox)
 * whose every connection is piped to one of keyvalet's listeners (forward proxy or gateway) at `target`. The socket is
 * writable by anyone who can reach it, so the folder holding it must be private (0700).
 */
export async function startSocketBridge(path: string, target: { host: string; port: number }): Promise<SocketBridge> {
  const open = new Set<Socket>()
  const server: Server = createServer((inside) => {
    const outside = connect(target.port, target.host)
    for (const s of [inside, outside]) {
      open.add(s)
      s.on('close', () => open.delete(s))
    }
    inside.on('error', () => outside.destroy())
    outside.on('error', () => inside.destroy())
    inside.pipe(outside).pipe(inside)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(path, () => resolve())
  })
  chmodSync(path, 0o666) // the sandbox's uid must be able to connect
  return {
    close: () => new Promise((resolve) => {
      for (const s of open) s.destroy()
      server.close(() => resolve())
    }),
  }
}
