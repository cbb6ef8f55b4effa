import { loadConfig } from '../../config/load.ts'
import { openRuntime } from '../../runtime.ts'
import type { AuditRecord } from '../../audit/record.ts'
import { suggestRules, suggestionsYaml } from '../../suggest/suggest.ts'
import { CONFIG_OPTION, configPath, parse, write } from '../args.ts'
import type { Command } from '../command.ts'
import { sinceMs } from '../when.ts'

const help = `usage: keyvalet suggest [--since WHEN] [--json] [--config FILE]

  Drafts rules from the requests the audit shows refused because no rule fits them
  (no_rule_for_path, method_not_allowed; also those reported as would_deny): per connector and
  method, the narrowest path pattern that covers them, with the severity the method implies
  (GET, HEAD, OPTIONS read; DELETE admin; others write). It prints YAML to review; it never
  changes the configuration.

  --since WHEN   only denials from then on: an ISO 8601 time, or a duration back from now (24h, 7d)
  --json         the drafts as JSON, with counts and example paths`

const PAGE = 1000

export const suggest: Command = {
  name: 'suggest',
  help,
  async run(args, io) {
    const { values } = parse(args, { ...CONFIG_OPTION, since: { type: 'string' }, json: { type: 'boolean' } }, help)
    const since = values.since === undefined ? undefined : sinceMs(values.since, '--since')
    const config = loadConfig(configPath(values.config, io))
    const runtime = await openRuntime(config, { env: io.env, createMasterKey: false })
    try {
      const records: AuditRecord[] = []
      for (let seq = 0; ;) {
        const rows = await runtime.store.audit.read(seq, PAGE)
        for (const row of rows) {
          const record = JSON.parse(row.line) as AuditRecord
          if ((record.decision === 'deny' || record.decision === 'would_deny') && (since === undefined || Date.parse(record.time) >= since)) records.push(record)
        }
        seq = rows.at(-1)?.seq ?? seq
        if (rows.length < PAGE) break
      }
      const drafts = suggestRules(records, config.policy)
      write(io.stdout, values.json === true ? JSON.stringify(drafts) : suggestionsYaml(drafts))
      return 0
    } finally {
      await runtime.close()
    }
  },
}
