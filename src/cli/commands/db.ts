import { verdictText } from '../../audit/verdict.ts'
import { verifyAudit } from '../../audit/verify.ts'
import { type Config, loadConfig } from '../../config/load.ts'
import { OperatorError } from '../../errors.ts'
import { openRuntime } from '../../runtime.ts'
import { checkStoreFiles, type FileCheck } from '../../store/sqlite-check.ts'
import { DAMAGED_HINT } from '../../store/sqlite-file.ts'
import { CONFIG_OPTION, configPath, parse, write } from '../args.ts'
import { copyInstallation, migrateStore, STORE_OPTIONS, storeStatus } from './db-store.ts'
import type { Command } from '../command.ts'

const help = `usage: keyvalet db <check|migrate|status|copy> [--config FILE] [options]

  check     checks keyvalet's two SQLite files, safe while keyvalet runs (it only reads):
            1. SQLite's integrity_check of keyvalet.db (vault, sessions) and of keyvalet-audit.db,
               every page, indexes against tables (about 1 s per million audit records from the
               page cache, longer from disk);
            2. when both are sound, the audit hash chain, as keyvalet audit verify does.
            Exits 0 when everything is sound, 1 otherwise. keyvalet start checks the files too,
            in bounded time: schedule this command for the full check of a large audit log.
  migrate   brings the configured PostgreSQL store to this keyvalet's schema (once, under a lock;
            keyvalet start does the same when its role may). --user ROLE with --password-file FILE
            or --password-env VAR: as the role that owns the database, when the config names a
            least-privilege runtime role; --grant-to ROLE: grant that role what keyvalet needs at
            run time, and nothing more (docs/deploy.md, "PostgreSQL").
  status    the schema version of the configured store and what is pending (exit 1 when a
            migration is pending); takes --user and the password options as migrate does.
  copy      --from sqlite:PATH [--to postgres://USER@HOST:PORT/DB --password-file FILE |
            --password-env VAR --ca-file FILE --tls-mode verify-full|disable]
            moves the installation whose keyvalet.db is PATH (stop keyvalet first) into an empty
            store: the config's store without --to. Secrets stay sealed under the same master key,
            sessions keep working, and the audit chain is copied as it is: keyvalet audit verify
            passes against the new store.`

/** Lines of SQLite's report shown per file; the rest is counted. */
const SHOWN = 5

export const db: Command = {
  name: 'db',
  help,
  async run(args, io) {
    const { values, positionals } = parse(args, { ...CONFIG_OPTION, ...STORE_OPTIONS }, help)
    const action = positionals[0]
    if (positionals.length !== 1 || (action !== 'check' && action !== 'migrate' && action !== 'status' && action !== 'copy')) {
      throw new OperatorError(`unknown action ${JSON.stringify(positionals.join(' '))}`, 'use: keyvalet db check | migrate | status | copy')
    }
    const config = loadConfig(configPath(values.config, io))
    if (action === 'migrate') return migrateStore(config, values, io)
    if (action === 'status') return storeStatus(config, values, io)
    if (action === 'copy') return copyInstallation(config, values, io)
    if (config.store.kind !== 'sqlite') throw new OperatorError('db check checks SQLite files; this configuration keeps its store in PostgreSQL', 'use keyvalet audit verify for the audit chain, and the server\'s own tools (amcheck) for its data')
    const checks = checkStoreFiles(config.databasePath, 'full')
    for (const check of checks) write(io.stdout, report(check))
    const damaged = checks.some((c) => c.problems.length > 0)
    const chain = damaged ? { ok: false, text: 'not verified: repair the damaged file first (verifying opens the files for writing)' } : await verifyChain(config, io.env)
    write(io.stdout, `audit chain: ${chain.text}`)
    if (!damaged && chain.ok) {
      write(io.stdout, 'result: sound')
      return 0
    }
    write(io.stdout, `result: ${damaged ? `DAMAGED: ${DAMAGED_HINT}` : 'NOT SOUND: see the audit chain above'}`)
    return 1
  },
}

function report(check: FileCheck): string {
  if (check.problems.length === 0) return `${check.file}: ok (${check.scope}, ${check.ms} ms)`
  const more = check.problems.length - SHOWN
  return [
    `${check.file}: DAMAGED (${check.scope}, ${check.ms} ms)`,
    ...check.problems.slice(0, SHOWN).map((p) => `  ${p}`),
    ...(more > 0 ? [`  … and ${more} more`] : []),
  ].join('\n')
}

async function verifyChain(config: Config, env: NodeJS.ProcessEnv): Promise<{ ok: boolean; text: string }> {
  let runtime
  try {
    runtime = await openRuntime(config, { env, createMasterKey: false })
    const result = await verifyAudit(runtime.store.audit, await runtime.openAuditKey())
    return { ok: result.ok, text: verdictText(result) }
  } catch (err) {
    if (!(err instanceof OperatorError)) throw err
    return { ok: false, text: `not verified: ${err.message}${err.hint === undefined ? '' : ` (${err.hint})`}` }
  } finally {
    await runtime?.close()
  }
}
