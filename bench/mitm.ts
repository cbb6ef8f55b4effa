/**
 * mitmproxy (mitmdump) as the reference intercepting proxy, when it is installed (Debian: apt-get
 * install mitmproxy; for the bench only, never a dependency). Quiet (-q, no flow output), its own
 * confdir (its CA is created there on first start), trusting the bench upstream's CA for the
 * upstream side, HTTP/2 offered to clients (http2=true, as keyvalet offers it) beside HTTP/1.1,
 * no addons or scripts of ours.
 */

import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { join } from 'node:path'
import type { Children, Managed } from './children.ts'

export interface Mitmproxy {
  readonly process: Managed
  readonly url: string
  readonly caPem: string
  readonly version: string
}

/** mitmdump's version line, or undefined when it is not installed. */
export function mitmdumpVersion(): string | undefined {
  try {
    const out = execFileSync('mitmdump', ['--version'], { encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'ignore'] })
    return /Mitmproxy:\s*(\S+)/.exec(out)?.[1] ?? out.split('\n')[0]
  } catch {
    return undefined
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    })
  })
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  })
}

export async function startMitmproxy(opts: { children: Children; dir: string; upstreamCaFile: string; version: string }): Promise<Mitmproxy> {
  const port = await freePort()
  const confdir = join(opts.dir, 'mitmproxy')
  const proc = opts.children.spawnCommand('mitmdump', 'mitmdump', [
    '--listen-host', '127.0.0.1', '--listen-port', String(port), '--set', `confdir=${confdir}`,
    '--set', `ssl_verify_upstream_trusted_ca=${opts.upstreamCaFile}`, '-q', '--set', 'flow_detail=0', '--set', 'http2=true',
  ], { cwd: opts.dir, env: { ...process.env, HOME: opts.dir } })
  const caFile = join(confdir, 'mitmproxy-ca-cert.pem')
  const deadline = Date.now() + 30_000
  while (!(existsSync(caFile) && (await accepts(port)))) {
    if (!proc.running) throw new Error(`mitmdump exited: ${proc.stderr.slice(-1000)}${proc.stdout.slice(-1000)}`)
    if (Date.now() > deadline) throw new Error('mitmdump did not start listening within 30 s')
    await new Promise((r) => setTimeout(r, 100))
  }
  return { process: proc, url: `http://127.0.0.1:${port}`, caPem: readFileSync(caFile, 'utf8'), version: opts.version }
}
