/**
 * What minting a leaf certificate adds to the first request to a host keyvalet has not seen.
 * Fork it, send one MintJob over IPC, receive one MintResult.
 *
 * For each host (an IP literal 127.0.0.N with a connector of its own, so a leaf keyvalet has never
 * minted), two fresh tunnels one after the other, each: TCP connect to the forward listener,
 * CONNECT host:port (keyvalet mints the leaf here, before it answers 200, on the first CONNECT
 * only), TLS handshake against keyvalet's CA, one GET with Connection: close, response read.
 * Tunnel 1 pays for the mint (and for keyvalet's first TLS connection to that upstream); tunnel 2
 * gets the cached leaf and the pooled upstream connection. Paired per host, so the difference of
 * "CONNECT → TLS up" is the minting cost alone.
 *
 * Also, in-process for reference: LeafCache.secureContextFor on fresh hosts (issueLeaf +
 * createSecureContext), the very call keyvalet makes; and the TLS context tls.connect builds per
 * new upstream connection when given `ca` (keyvalet's pool, for a connector with ca_file).
 */

import { connect } from 'node:net'
import { connect as tlsConnect, createSecureContext, rootCertificates } from 'node:tls'
import { createCa } from '../src/tls/certificate.ts'
import { LeafCache } from '../src/tls/leaf-cache.ts'
import { median } from './stats.ts'

export interface MintJob {
  readonly proxyHost: string
  readonly proxyPort: number
  /** Proxy-Authorization value. */
  readonly token: string
  /** keyvalet's CA (PEM). */
  readonly caPem: string
  readonly hosts: readonly { host: string; port: number }[]
  /** The first this many hosts warm the path up and are not counted. */
  readonly warmupHosts: number
  readonly path: string
  readonly inProcessMints: number
}

export interface TunnelTiming {
  /** CONNECT written → `200 Connection Established` read. */
  readonly connectMs: number
  /** 200 read → TLS handshake done. */
  readonly tlsMs: number
  /** GET written → whole response read. */
  readonly requestMs: number
  /** TCP connect started → whole response read. */
  readonly totalMs: number
  readonly status: number
}

export interface MintStat { readonly median: number; readonly p90: number; readonly max: number }

export interface MintResult {
  readonly hosts: number
  readonly first: { readonly connectMs: MintStat; readonly tlsMs: MintStat; readonly requestMs: MintStat; readonly totalMs: MintStat }
  readonly second: { readonly connectMs: MintStat; readonly tlsMs: MintStat; readonly requestMs: MintStat; readonly totalMs: MintStat }
  /** Paired per host, tunnel 1 minus tunnel 2. */
  readonly addedHandshakeMs: MintStat
  readonly addedTotalMs: MintStat
  readonly inProcessMintMs: MintStat & { readonly count: number }
  /**
   * In-process: the cost of tls.createSecureContext with the system roots plus one extra CA (what
   * keyvalet builds once per connector with a ca_file), and with the system store only.
   */
  readonly upstreamContextMs: { readonly rootsPlusCaFile: MintStat; readonly systemDefault: MintStat; readonly roots: number }
  readonly failures: readonly string[]
}

const hr = (): number => Number(process.hrtime.bigint()) / 1e6

function stat(values: readonly number[]): MintStat {
  const s = [...values].sort((a, b) => a - b)
  return { median: median(s), p90: s[Math.min(s.length - 1, Math.ceil(0.9 * s.length) - 1)] ?? Number.NaN, max: s.at(-1) ?? Number.NaN }
}

function tunnelOnce(job: MintJob, host: string, port: number): Promise<TunnelTiming> {
  return new Promise((resolve, reject) => {
    const authority = `${host}:${port}`
    const tStart = hr()
    let tConnectSent = 0
    let t200 = 0
    let tTls = 0
    let tGet = 0
    const sock = connect(job.proxyPort, job.proxyHost)
    sock.setNoDelay(true)
    const fail = (err: Error): void => {
      clearTimeout(timer)
      sock.destroy()
      reject(err)
    }
    const timer = setTimeout(() => fail(new Error(`${authority}: no answer within 10 s`)), 10_000)
    sock.once('error', fail)
    sock.once('connect', () => {
      tConnectSent = hr()
      sock.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\nProxy-Authorization: ${job.token}\r\n\r\n`)
    })
    let head = Buffer.alloc(0)
    const onHead = (d: Buffer): void => {
      head = Buffer.concat([head, d])
      const end = head.indexOf('\r\n\r\n')
      if (end === -1) return
      sock.off('data', onHead)
      sock.pause()
      t200 = hr()
      const line = head.subarray(0, head.indexOf('\r\n')).toString('latin1')
      if (!/^HTTP\/1\.[01] 200 /.test(line)) return fail(new Error(`${authority}: CONNECT answered ${line} ${head.subarray(end + 4).toString('utf8').slice(0, 200)}`))
      if (head.length > end + 4) return fail(new Error(`${authority}: bytes after the CONNECT answer`))
      // An IP literal: no SNI is sent, the certificate must carry the IP in its SAN.
      const tls = tlsConnect({ socket: sock, host, ca: job.caPem, ALPNProtocols: ['http/1.1'] })
      tls.once('error', fail)
      tls.once('secureConnect', () => {
        tTls = hr()
        tGet = hr()
        tls.write(`GET ${job.path} HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`)
      })
      let res = Buffer.alloc(0)
      tls.on('data', (chunk: Buffer) => {
        res = Buffer.concat([res, chunk])
        const hEnd = res.indexOf('\r\n\r\n')
        if (hEnd === -1) return
        const headers = res.subarray(0, hEnd).toString('latin1')
        const length = /\r\ncontent-length:\s*(\d+)/i.exec(headers)
        if (length === null) return fail(new Error(`${authority}: response without content-length: ${headers.slice(0, 200)}`))
        if (res.length < hEnd + 4 + Number(length[1])) return
        const tDone = hr()
        clearTimeout(timer)
        tls.destroy()
        resolve({ connectMs: t200 - tConnectSent, tlsMs: tTls - t200, requestMs: tDone - tGet, totalMs: tDone - tStart, status: Number(/^HTTP\/1\.1 (\d{3})/.exec(headers)?.[1] ?? 0) })
      })
    }
    sock.on('data', onHead)
  })
}

export async function runMint(job: MintJob): Promise<MintResult> {
  const failures: string[] = []
  const first: TunnelTiming[] = []
  const second: TunnelTiming[] = []
  for (const [i, { host, port }] of job.hosts.entries()) {
    try {
      const a = await tunnelOnce(job, host, port)
      const b = await tunnelOnce(job, host, port)
      for (const t of [a, b]) if (t.status !== 200) throw new Error(`${host}:${port}: GET ${job.path} answered ${t.status}`)
      if (i < job.warmupHosts) continue
      first.push(a)
      second.push(b)
    } catch (err) {
      failures.push(err instanceof Error ? err.message : String(err))
    }
  }
  const pick = (ts: TunnelTiming[]) => ({
    connectMs: stat(ts.map((t) => t.connectMs)), tlsMs: stat(ts.map((t) => t.tlsMs)), requestMs: stat(ts.map((t) => t.requestMs)), totalMs: stat(ts.map((t) => t.totalMs)),
  })

  // In-process: the call keyvalet makes on a CONNECT to a host it has no leaf for.
  const now = Date.now()
  const ca = createCa({ commonName: 'bench mint CA', notBefore: new Date(now - 3_600_000), notAfter: new Date(now + 86_400_000) })
  const cache = new LeafCache({ ca })
  const mintMs: number[] = []
  const warm = 20
  for (let i = 0; i < job.inProcessMints + warm; i++) {
    const t0 = hr()
    cache.secureContextFor(`10.${(i >> 8) & 255}.${i & 255}.1`)
    if (i >= warm) mintMs.push(hr() - t0)
  }
  const timeContext = (options: Parameters<typeof createSecureContext>[0]): MintStat => {
    for (let i = 0; i < 3; i++) createSecureContext(options)
    const ms: number[] = []
    for (let i = 0; i < 30; i++) {
      const t0 = hr()
      createSecureContext(options)
      ms.push(hr() - t0)
    }
    return stat(ms)
  }
  const upstreamContextMs = { rootsPlusCaFile: timeContext({ ca: [...rootCertificates, ca.certPem] }), systemDefault: timeContext({}), roots: rootCertificates.length }
  return {
    upstreamContextMs,
    hosts: first.length,
    first: pick(first),
    second: pick(second),
    addedHandshakeMs: stat(first.map((a, i) => a.connectMs + a.tlsMs - ((second[i] as TunnelTiming).connectMs + (second[i] as TunnelTiming).tlsMs))),
    addedTotalMs: stat(first.map((a, i) => a.totalMs - (second[i] as TunnelTiming).totalMs)),
    inProcessMintMs: { ...stat(mintMs), count: mintMs.length },
    failures,
  }
}

if (import.meta.main) {
  process.once('message', (job: MintJob) => {
    runMint(job).then((result) => {
      process.send?.({ event: 'result', result }, () => process.exit(0))
    }, (err: unknown) => {
      process.send?.({ event: 'error', error: err instanceof Error ? err.stack ?? err.message : String(err) }, () => process.exit(1))
    })
  })
  process.on('disconnect', () => process.exit(0))
}
