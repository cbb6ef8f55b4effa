/**
 * A real, minimal DNS server over UDP on 127.0.0.1:0 for tests: answers A and AAAA queries (class
 * IN) from a mutable table, NXDOMAIN for names not in it, NOERROR with no answers (NODATA) for a
 * known name without records of the asked type. Tests change `table` between lookups to rebind
 * a name, set `drop` to make the server swallow queries (timeouts), and read `queries`.
 *
 * Wire format (RFC 1035 §4), written by hand:
 *   header   12 bytes: ID, flags (QR OPCODE AA TC RD | RA Z RCODE), QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT
 *   question QNAME (length-prefixed labels, 0-terminated), QTYPE, QCLASS
 *   answer   NAME (here the pointer 0xC00C: "the name at offset 12", i.e. the question's), TYPE,
 *            CLASS, TTL (32 bits), RDLENGTH, RDATA (4 bytes for A, 16 for AAAA)
 * Additional records in the query (EDNS OPT) are ignored and not echoed.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { isIPv4, isIPv6 } from 'node:net'

export interface DnsRecordSet {
  a?: string[]
  aaaa?: string[]
  /** Seconds; default 60. */
  ttl?: number
}

export type DnsTable = Record<string, DnsRecordSet>

export interface DnsServer {
  /** '127.0.0.1:PORT', as dns.Resolver#setServers wants it. */
  readonly address: string
  readonly port: number
  /** Mutable: keyed by lower-case name without a trailing dot. */
  table: DnsTable
  /** When true, queries are counted and then dropped without an answer. */
  drop: boolean
  /** Number of queries received (including dropped and malformed ones). */
  readonly queries: number
  /** Every well-formed question received, in order: `${name} ${'A' | 'AAAA' | type number}`. */
  readonly log: readonly string[]
  close(): Promise<void>
}

const TYPE_A = 1
const TYPE_AAAA = 28
const CLASS_IN = 1
const RCODE_NOERROR = 0
const RCODE_FORMERR = 1
const RCODE_NXDOMAIN = 3
const RCODE_NOTIMP = 4

export async function startDnsServer(table: DnsTable = {}): Promise<DnsServer> {
  const socket: Socket = createSocket('udp4')
  let queries = 0
  const log: string[] = []
  const state = {
    table,
    drop: false,
  }

  socket.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
    queries++
    if (state.drop) return
    const reply = answer(msg, state.table, log)
    if (reply !== undefined) socket.send(reply, rinfo.port, rinfo.address)
  })

  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(0, '127.0.0.1', () => {
      socket.off('error', reject)
      resolve()
    })
  })
  const { port } = socket.address()

  return {
    address: `127.0.0.1:${port}`,
    port,
    get table() { return state.table },
    set table(t: DnsTable) { state.table = t },
    get drop() { return state.drop },
    set drop(d: boolean) { state.drop = d },
    get queries() { return queries },
    log,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  }
}

/** The response to one query message, or undefined to ignore it (too short to carry an ID). */
function answer(msg: Buffer, table: DnsTable, log: string[]): Buffer | undefined {
  if (msg.length < 12) return undefined
  const id = msg.readUInt16BE(0)
  const flags = msg.readUInt16BE(2)
  const opcode = (flags >> 11) & 0xf
  const rd = (flags >> 8) & 1
  const qdcount = msg.readUInt16BE(4)
  const isResponse = (flags >> 15) & 1
  if (isResponse === 1) return undefined

  // QNAME: labels until a zero byte; compression pointers do not occur in a query's only question.
  const labels: string[] = []
  let off = 12
  for (let n = 0; n < 128; n++) {
    if (off >= msg.length) return header(id, opcode, rd, RCODE_FORMERR, 0, 0)
    const len = msg[off] ?? 0
    if (len === 0) { off++; break }
    if (len > 63 || off + 1 + len > msg.length) return header(id, opcode, rd, RCODE_FORMERR, 0, 0)
    labels.push(msg.toString('latin1', off + 1, off + 1 + len))
    off += 1 + len
  }
  if (opcode !== 0 || qdcount !== 1 || off + 4 > msg.length) return header(id, opcode, rd, opcode !== 0 ? RCODE_NOTIMP : RCODE_FORMERR, 0, 0)
  const qtype = msg.readUInt16BE(off)
  const qclass = msg.readUInt16BE(off + 2)
  const question = msg.subarray(12, off + 4) // echoed byte for byte (keeps 0x20 case randomisation intact)

  const name = labels.join('.').toLowerCase()
  log.push(`${name} ${qtype === TYPE_A ? 'A' : qtype === TYPE_AAAA ? 'AAAA' : qtype}`)

  const entry = Object.hasOwn(table, name) ? table[name] : undefined
  if (entry === undefined) return Buffer.concat([header(id, opcode, rd, RCODE_NXDOMAIN, 1, 0), question])

  const ttl = entry.ttl ?? 60
  const rdatas: Buffer[] = []
  if (qclass === CLASS_IN && qtype === TYPE_A) for (const a of entry.a ?? []) rdatas.push(ipv4Bytes(a))
  if (qclass === CLASS_IN && qtype === TYPE_AAAA) for (const a of entry.aaaa ?? []) rdatas.push(ipv6Bytes(a))

  const answers = rdatas.map((rdata) => {
    const rr = Buffer.alloc(12)
    rr.writeUInt16BE(0xc00c, 0) // NAME: pointer to offset 12, the question's QNAME
    rr.writeUInt16BE(qtype, 2)
    rr.writeUInt16BE(CLASS_IN, 4)
    rr.writeUInt32BE(ttl, 6)
    rr.writeUInt16BE(rdata.length, 10)
    return Buffer.concat([rr, rdata])
  })
  return Buffer.concat([header(id, opcode, rd, RCODE_NOERROR, 1, answers.length), question, ...answers])
}

function header(id: number, opcode: number, rd: number, rcode: number, qdcount: number, ancount: number): Buffer {
  const h = Buffer.alloc(12)
  h.writeUInt16BE(id, 0)
  // QR=1 (response), OPCODE echoed, AA=1 (authoritative), TC=0, RD echoed, RA=1, Z=0, RCODE.
  h.writeUInt16BE((1 << 15) | (opcode << 11) | (1 << 10) | (rd << 8) | (1 << 7) | rcode, 2)
  h.writeUInt16BE(qdcount, 4)
  h.writeUInt16BE(ancount, 6)
  // NSCOUNT and ARCOUNT stay 0.
  return h
}

function ipv4Bytes(address: string): Buffer {
  if (!isIPv4(address)) throw new Error(`dns-server: not an IPv4 address: ${address}`)
  return Buffer.from(address.split('.').map(Number))
}

function ipv6Bytes(address: string): Buffer {
  if (!isIPv6(address)) throw new Error(`dns-server: not an IPv6 address: ${address}`)
  // Expand '::' and a trailing dotted quad into eight 16-bit words.
  let text = address
  let tail: number[] = []
  const m = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (m !== null) {
    const q = (m[2] ?? '').split('.').map(Number)
    tail = [((q[0] ?? 0) << 8) | (q[1] ?? 0), ((q[2] ?? 0) << 8) | (q[3] ?? 0)]
    text = m[1] ?? ''
    if (!text.endsWith('::')) text = text.slice(0, -1)
  }
  const [headText = '', restText] = text.split('::')
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((w) => Number.parseInt(w, 16)))
  const head = parse(headText)
  const rest = restText === undefined ? [] : parse(restText)
  const fill = restText === undefined ? 0 : 8 - head.length - rest.length - tail.length
  const words = [...head, ...new Array<number>(fill).fill(0), ...rest, ...tail]
  const b = Buffer.alloc(16)
  words.forEach((w, i) => b.writeUInt16BE(w, 2 * i))
  return b
}
