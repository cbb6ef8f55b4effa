import { setTimeout as sleep } from 'node:timers/promises'
import type { AuditRecord } from '../../audit/record.ts'
import { StreamLedger, type OpenStream } from '../../audit/streams.ts'
import { verdictText } from '../../audit/verdict.ts'
import { verifyAudit, type AuditProblem, type AuditVerification } from '../../audit/verify.ts'
import type { AdminClient, AdminInput } from '../../admin/client.ts'
import { canonicalJson } from '../../audit/canonical-json.ts'
import type { AuditFilter, AuditPage, AuditRepo } from '../../store/store.ts'
import { loadConfig } from '../../config/load.ts'
import { OperatorError } from '../../errors.ts'
import { openRuntime } from '../../runtime.ts'
import { CONFIG_OPTION, configPath, parse, write } from '../args.ts'
import type { Command, Io } from '../command.ts'
import { remoteClient, remoteStream, SERVER_OPTION } from '../remote.ts'

const help = `usage: keyvalet audit <tail|verify> [--config FILE | --server URL] [filters]

  tail [-n N] [--follow]   the last N records (default 20) matching the filters, as JSON lines;
                           --follow keeps printing new ones
  tail --open              the open records of streams and long requests that have no closing
                           record: in flight now, or cut off by a crash of keyvalet (local only)
  verify                   checks the whole hash chain and reports the first broken or missing
                           record, and names the streams left open

filters (each must match exactly): --agent --user --workspace --task --session --connector
  --decision allow|deny|error --error CODE --since TIME --until TIME (RFC 3339; until excluded)

--server URL   read the audit of a running keyvalet through its admin API (listen.admin) instead
               of the local database, with an admin token of role admin or auditor in
               KEYVALET_ADMIN_TOKEN

A request is one record, or, when it streams or lasts (audit.open_after_ms), an open record
("phase":"open") written while it is in flight and its closing record ("phase":"close",
"opened": the open record's seq) with the outcome. Each record names the configuration version
it was decided under (config_version).`

const FILTERS = ['agent', 'user', 'workspace', 'task', 'session', 'connector', 'decision', 'error', 'since', 'until'] as const
const FILTER_OPTIONS = Object.fromEntries(FILTERS.map((name) => [name, { type: 'string' }])) as { readonly [K in (typeof FILTERS)[number]]: { readonly type: 'string' } }
const PAGE = 500

/** Where the records are: the local database, or a keyvalet's admin API. */
interface AuditPlace {
  /** Matching records as their lines, in seq order after `after` in that order. */
  query(filter: AuditFilter, page: AuditPage): Promise<{ seq: number; line: string }[]>
  /** Prints the matching records after `after` as they are committed; never returns. */
  follow(filter: AuditFilter, after: number, print: (line: string) => void): Promise<never>
  verify(): Promise<AuditVerification>
  close(): Promise<void>
}

export const audit: Command = {
  name: 'audit',
  help,
  async run(args, io) {
    const { values, positionals } = parse(args, { ...CONFIG_OPTION, ...SERVER_OPTION, ...FILTER_OPTIONS, n: { type: 'string', short: 'n' }, follow: { type: 'boolean', short: 'f' }, open: { type: 'boolean' } }, help)
    const action = positionals[0]
    if (action !== 'tail' && action !== 'verify') throw new OperatorError(`unknown action ${JSON.stringify(action ?? '')}`, 'use: keyvalet audit tail | verify')
    const filter = filterOf(values)
    if (values.open === true) {
      if (values.server !== undefined) throw new OperatorError('tail --open reads the local database only', 'run it on the keyvalet host, or use keyvalet audit verify --server, which names the open streams')
      return tailOpen(values.config, io)
    }
    const place = values.server === undefined ? await localPlace(values.config, io) : remotePlace(remoteClient(values.server, io), (query) => remoteStream(values.server as string, '/v1/audit/stream', query, io))
    try {
      if (action === 'verify') {
        const result = await place.verify()
        write(io.stdout, verdictText(result))
        return result.ok ? 0 : 1
      }
      const n = Number(values.n ?? '20')
      if (!Number.isInteger(n) || n < 0) throw new OperatorError('-n must be a whole number')
      // The last n, newest first, printed oldest first; then onwards from the newest.
      const last = n === 0 ? [] : await place.query(filter, { order: 'desc', limit: Math.min(n, 1000) })
      for (const row of [...last].reverse()) write(io.stdout, row.line)
      if (values.follow !== true) return 0
      const after = last[0]?.seq ?? (await place.query(filter, { order: 'desc', limit: 1 }))[0]?.seq ?? 0
      return await place.follow(filter, after, (line) => write(io.stdout, line))
    } finally {
      await place.close()
    }
  },
}

function filterOf(values: Partial<Record<(typeof FILTERS)[number], string | boolean>>): AuditFilter {
  const filter: Record<string, string> = {}
  for (const name of FILTERS) {
    const value = values[name]
    if (typeof value !== 'string') continue
    if (name === 'since' || name === 'until') {
      const ms = Date.parse(value)
      if (Number.isNaN(ms)) throw new OperatorError(`--${name} ${value} is not a time`, 'e.g. 2026-05-01T00:00:00Z')
      filter[name] = new Date(ms).toISOString()
    } else {
      filter[name] = value
    }
  }
  return filter
}

async function localPlace(configOption: string | boolean | undefined, io: Io): Promise<AuditPlace> {
  const runtime = await openRuntime(loadConfig(configPath(configOption, io)), { env: io.env, createMasterKey: false })
  return {
    query: (filter, page) => runtime.store.audit.query(filter, page),
    async follow(filter, after, print) {
      for (let seq = after; ;) {
        const rows = await runtime.store.audit.query(filter, { order: 'asc', after: seq, limit: PAGE })
        for (const row of rows) print(row.line)
        seq = rows.at(-1)?.seq ?? seq
        if (rows.length < PAGE) await sleep(500)
      }
    },
    async verify() {
      const result = await verifyAudit(runtime.store.audit, await runtime.openAuditKey())
      return result
    },
    close: () => runtime.close(),
  }
}

/**
 * Through the typed admin client: records come back parsed, and are printed in their canonical
 * form, as stored. --follow reads the live stream (GET /v1/audit/stream: one audited call, where
 * polling the query would write a record of its own every time).
 */
function remotePlace(client: AdminClient, stream: (query: URLSearchParams) => Promise<Response>): AuditPlace {
  return {
    async follow(filter, after, print) {
      const res = await stream(new URLSearchParams({ ...filter, after: String(after) }))
      if (!res.ok || res.body === null) throw new OperatorError(`the audit stream answered ${res.status} (${res.headers.get('x-keyvalet-error') ?? 'no code'})`)
      let text = ''
      for await (const chunk of res.body) {
        text += Buffer.from(chunk).toString('utf8')
        for (let end = text.indexOf('\n\n'); end >= 0; end = text.indexOf('\n\n')) {
          const event = text.slice(0, end).split('\n')
          text = text.slice(end + 2)
          const data = event.find((l) => l.startsWith('data: '))?.slice(6)
          if (event.includes('event: record') && data !== undefined) print(data)
          if (event.includes('event: dropped')) throw new OperatorError('the audit stream dropped this reader: it fell too far behind', 'follow again, or query with keyvalet audit tail')
        }
      }
      throw new OperatorError('the audit stream ended (keyvalet stopped?)')
    },
    async query(filter, page) {
      const { records, cursors } = await client.call('audit.query', {
        // The server checks decision against its values: the filter carries what was typed.
        query: { ...filter, order: page.order, limit: page.limit, ...(page.after === undefined ? {} : { cursor: String(page.after) }) } as AdminInput<'audit.query'>['query'],
      })
      return records.map((record: unknown, i: number) => ({ seq: Number(cursors[i]), line: canonicalJson(record) }))
    },
    async verify() {
      const r = await client.call('audit.verify')
      if (r.ok) return { ok: true, count: r.count, chains: (r.chains ?? []).map((c) => ({ instance: c.instance, count: c.count, lastHash: c.last_hash, open: c.open })) }
      return { ok: false, count: r.count, instance: r.instance ?? '', seq: r.seq ?? 0, problem: (r.problem ?? 'unparseable') as AuditProblem, message: r.message ?? '' }
    },
    close: async () => {},
  }
}

async function tailOpen(configOption: string | boolean | undefined, io: Io): Promise<number> {
  const runtime = await openRuntime(loadConfig(configPath(configOption, io)), { env: io.env, createMasterKey: false })
  try {
    for (const stream of await unclosed(runtime.store.audit)) write(io.stdout, stream.line ?? '')
    return 0
  } finally {
    await runtime.close()
  }
}

/** The open records no closing record followed, as stored, each chain's own (verify checks that the pairs are sound). */
async function unclosed(repo: AuditRepo): Promise<OpenStream[]> {
  const ledgers = new Map<string, StreamLedger>()
  for (let seq = 0; ; ) {
    const rows = await repo.read(seq, 500)
    for (const row of rows) {
      let ledger = ledgers.get(row.instance)
      if (ledger === undefined) ledgers.set(row.instance, (ledger = new StreamLedger()))
      ledger.see(JSON.parse(row.line) as AuditRecord, row.line)
    }
    if (rows.length < 500) return [...ledgers.values()].flatMap((l) => l.open)
    seq = rows.at(-1)?.seq ?? seq
  }
}

