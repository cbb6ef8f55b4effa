import { setTimeout as sleep } from 'node:timers/promises'
import type { AuditRecord } from '../../audit/record.ts'
import { StreamLedger, type OpenStream } from '../../audit/streams.ts'
import { verifyAudit } from '../../audit/verify.ts'
import type { AuditRepo } from '../../store/store.ts'
import { loadConfig } from '../../config/load.ts'
import { OperatorError } from '../../errors.ts'
import { openRuntime } from '../../runtime.ts'
import { CONFIG_OPTION, configPath, parse, write } from '../args.ts'
import type { Command } from '../command.ts'

const help = `usage: keyvalet audit <tail|verify> [--config FILE]

  tail [-n N] [--follow]   the last N records (default 20) as JSON lines; --follow keeps printing
  tail --open              the open records of streams and long requests that have no closing
                           record: in flight now, or cut off by a crash of keyvalet
  verify                   checks the whole hash chain and reports the first broken or missing
                           record, and names the streams left open

A request is one record, or, when it streams or lasts (audit.open_after_ms), an open record
("phase":"open") written while it is in flight and its closing record ("phase":"close",
"opened": the open record's seq) with the outcome.`

export const audit: Command = {
  name: 'audit',
  summary: 'read and verify the tamper-evident audit log',
  help,
  async run(args, io) {
    const { values, positionals } = parse(args, { ...CONFIG_OPTION, n: { type: 'string', short: 'n' }, follow: { type: 'boolean', short: 'f' }, open: { type: 'boolean' } }, help)
    const action = positionals[0]
    if (action !== 'tail' && action !== 'verify') throw new OperatorError(`unknown action ${JSON.stringify(action ?? '')}`, 'use: keyvalet audit tail | verify')
    const config = loadConfig(configPath(values.config, io))
    const runtime = await openRuntime(config, { env: io.env, createMasterKey: false })
    try {
      if (action === 'verify') {
        const result = await verifyAudit(runtime.store.audit, await runtime.openAuditKey())
        if (result.ok) {
          write(io.stdout, `ok: ${result.count} records, chain intact, last hash ${result.lastHash}${openStreams(result.open)}`)
          return 0
        }
        write(io.stdout, `BROKEN at record ${result.seq} (${result.problem}): ${result.message}; ${result.count} records before it verified`)
        return 1
      }
      if (values.open === true) {
        for (const stream of await unclosed(runtime.store.audit)) write(io.stdout, stream.line ?? '')
        return 0
      }
      const n = Number(values.n ?? '20')
      if (!Number.isInteger(n) || n < 0) throw new OperatorError('-n must be a whole number')
      const last = await runtime.store.audit.last()
      let seq = Math.max(0, (last?.seq ?? 0) - n)
      for (;;) {
        const rows = await runtime.store.audit.read(seq, 500)
        for (const row of rows) write(io.stdout, row.line)
        seq = rows.at(-1)?.seq ?? seq
        if (rows.length === 500) continue
        if (values.follow !== true) return 0
        await sleep(500)
      }
    } finally {
      await runtime.close()
    }
  },
}

/** The open records no closing record followed, as stored (verify checks that the pairs are sound). */
async function unclosed(repo: AuditRepo): Promise<OpenStream[]> {
  const ledger = new StreamLedger()
  for (let seq = 0; ; ) {
    const rows = await repo.read(seq, 500)
    for (const row of rows) ledger.see(JSON.parse(row.line) as AuditRecord, row.line)
    if (rows.length < 500) return ledger.open
    seq = rows.at(-1)?.seq ?? seq
  }
}

function openStreams(open: readonly OpenStream[]): string {
  if (open.length === 0) return ''
  const named = open.slice(0, 20).map((s) => `${s.seq} (${s.request_id})`).join(', ')
  return `; ${open.length} stream${open.length === 1 ? '' : 's'} open (in flight now, or cut off by a crash of keyvalet): record ${named}${open.length > 20 ? ', …' : ''}`
}
