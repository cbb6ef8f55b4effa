import type { AuditRecord } from '../../audit/record.ts'
import { loadConfig } from '../../config/load.ts'
import { OperatorError } from '../../errors.ts'
import { Replay } from '../../replay/replay.ts'
import { NOT_REPLAYABLE_WHY, NOT_REPLAYED, replayText } from '../../replay/text.ts'
import { openRuntime } from '../../runtime.ts'
import { CONFIG_OPTION, configPath, parse, write } from '../args.ts'
import type { Command } from '../command.ts'
import { sinceMs } from '../when.ts'

const help = `usage: keyvalet replay --config NEW.yaml [--since WHEN] [--until WHEN] [--audit-config FILE] [--json]

  Decides every request recorded in the audit again under the configuration NEW.yaml, and prints
  what would change: allowed -> denied, denied -> allowed, and allowed by a different rule, with
  counts and examples. Nothing is sent; the configuration in force is not changed. Only the HTTP
  policy is decided again (not budgets, rate limits, the egress address check or credentials). A
  record that cannot be decided again exactly (a rule reads its body, or a query or header value
  the audit does not hold; an MCP endpoint; a record from before keyvalet recorded what a decision
  needs) is counted as not replayable, with the reason, never guessed.

  --config NEW.yaml     the configuration to try; its store holds the audit read, unless --audit-config
  --audit-config FILE   read the audit from the store of this configuration instead (e.g. the one in force)
  --since WHEN          only requests from then on: an ISO 8601 time, or a duration back from now (24h, 7d)
  --until WHEN          only requests before then (same forms)
  --json                the report as JSON`

const PAGE = 1000

export const replay: Command = {
  name: 'replay',
  help,
  async run(args, io) {
    const { values } = parse(args, { ...CONFIG_OPTION, since: { type: 'string' }, until: { type: 'string' }, 'audit-config': { type: 'string' }, json: { type: 'boolean' } }, help)
    if (values.config === undefined) throw new OperatorError('--config NEW.yaml is required', 'the configuration to decide the recorded requests under')
    const since = values.since === undefined ? -Infinity : sinceMs(values.since, '--since')
    const until = values.until === undefined ? Infinity : sinceMs(values.until, '--until')
    const file = configPath(values.config, io)
    const config = loadConfig(file)
    const source = values['audit-config'] === undefined ? config : loadConfig(configPath(values['audit-config'], io))
    const runtime = await openRuntime(source, { env: io.env, createMasterKey: false })
    const replaying = new Replay(config.policy)
    try {
      for (let seq = 0; ;) {
        const rows = await runtime.store.audit.read(seq, PAGE)
        for (const row of rows) {
          const record = JSON.parse(row.line) as AuditRecord
          const at = Date.parse(record.time)
          if (at >= since && at < until) replaying.add(record)
        }
        seq = rows.at(-1)?.seq ?? seq
        if (rows.length < PAGE) break
      }
    } finally {
      await runtime.close()
    }
    const report = replaying.report
    if (values.json === true) {
      const why = Object.fromEntries(Object.keys(report.not_replayable.reasons).map((r) => [r, NOT_REPLAYABLE_WHY[r as keyof typeof NOT_REPLAYABLE_WHY]]))
      write(io.stdout, JSON.stringify({ config: file, config_version: config.version, ...report, not_replayable: { ...report.not_replayable, why }, not_replayed: NOT_REPLAYED }))
    } else {
      write(io.stdout, replayText(report, file, config.version))
    }
    return 0
  },
}
