import { missingSecretWarning } from '../../config/check.ts'
import { loadConfig } from '../../config/load.ts'
import { guardedHeaderNotes } from '../../config/check-headers.ts'
import { configPath, parse, write } from '../args.ts'
import type { Command } from '../command.ts'
import { formatWarning, missingFromVault } from '../warnings.ts'

const help = `usage: keyvalet check [CONFIG] [--strict]

Validates a configuration file and warns about dangerous choices (a rule that allows a whole
organisation, a cleartext upstream, a connector with no rules), and, when its data folder has a
database, about vault secrets it names that are not set (names only: no master key needed); with
notes on how some rules read (a path ending in /** does not match its prefix; for aws_sigv4
connectors, which headers that change access or meaning, x-amz-acl and the like, each write rule
lets through). Exits 1 on an error, and on a warning too with --strict (notes never fail).
CONFIG defaults to --config, $KEYVALET_CONFIG or ./keyvalet.yaml.`

export const check: Command = {
  name: 'check',
  help,
  async run(args, io) {
    const { values, positionals } = parse(args, { config: { type: 'string', short: 'c' }, strict: { type: 'boolean' } }, help)
    const file = configPath(positionals[0] ?? values.config, io)
    const config = loadConfig(file)
    const rules = [...config.policy.connectors.values()].reduce((n, c) => n + c.rules.length, 0)
    const missing = await missingFromVault(config)
    const warnings = [...config.warnings, ...(missing ?? []).map(missingSecretWarning)].sort((a, b) => (a.line ?? 0) - (b.line ?? 0))
    for (const w of warnings) write(io.stdout, formatWarning(config, w))
    for (const n of config.notes) write(io.stdout, `note: ${config.file}${n.line === undefined ? '' : `:${n.line}`}: ${n.path}: ${n.message}`)
    for (const n of guardedHeaderNotes(config.policy)) write(io.stdout, `note: ${n.path}: ${n.message}`)
    if (missing === undefined && config.secrets.length > 0) {
      write(io.stdout, config.store.kind === 'sqlite' ? `note: no database at ${config.databasePath} yet: vault secrets not checked` : 'note: the store is a PostgreSQL server, which check does not reach: vault secrets not checked')
    }
    write(io.stdout, `ok: ${config.file}: ${config.policy.connectors.size} connectors, ${rules} rules, ${warnings.length} warnings`)
    return values.strict === true && warnings.length > 0 ? 1 : 0
  },
}
