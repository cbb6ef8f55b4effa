import { AssertionKeys } from '../../assertion/keys.ts'
import { loadConfig } from '../../config/load.ts'
import { OperatorError } from '../../errors.ts'
import { openRuntime } from '../../runtime.ts'
import { parseDuration } from '../../duration.ts'
import { CONFIG_OPTION, configPath, parse, write } from '../args.ts'
import type { Command } from '../command.ts'

const help = `usage: keyvalet assertion <rotate|jwks> [--overlap DURATION] [--publish-ahead DURATION] [--config FILE]

  rotate        create a new signing key for signed user assertions. It is published in the
                JWKS at once and signs from --publish-ahead later (default 5m, the JWKS
                document's max-age), so APIs that cached the JWKS learn the key before they meet
                it; until then the previous key signs (a running keyvalet follows without a
                restart). The previous key then stays published for --overlap (default 1h), so
                tokens it signed still verify, and is dropped. Keep the overlap at least as long
                as the longest assertion ttl_s.
  jwks          print the JWKS document (public keys only) that the gateway serves at
                /.well-known/jwks.json

Keys are created on first use and kept encrypted in the vault (keyvalet.assertion-keys); a
private key is never printed.`

export const assertion: Command = {
  name: 'assertion',
  help,
  async run(args, io) {
    const { values, positionals } = parse(args, { ...CONFIG_OPTION, overlap: { type: 'string' }, 'publish-ahead': { type: 'string' } }, help)
    const action = positionals[0]
    if (action !== 'rotate' && action !== 'jwks') throw new OperatorError(`unknown action ${JSON.stringify(action ?? '')}`, 'use: keyvalet assertion rotate [--overlap 1h] | jwks')
    if (action === 'jwks' && (values.overlap !== undefined || values['publish-ahead'] !== undefined)) throw new OperatorError('--overlap and --publish-ahead only apply to rotate')
    const overlapMs = action === 'rotate' ? parseDuration(values.overlap ?? '1h') : 0
    const aheadMs = action === 'rotate' ? parseDuration(values['publish-ahead'] ?? '5m') : 0
    const config = loadConfig(configPath(values.config, io))
    const runtime = await openRuntime(config, { env: io.env, createMasterKey: false })
    try {
      const keys = new AssertionKeys(runtime.vault, Date.now)
      if (action === 'jwks') {
        write(io.stdout, JSON.stringify(await keys.jwks(), null, 2))
        return 0
      }
      const longest = Math.max(0, ...[...config.policy.connectors.values()].map((c) => c.assertion?.ttlSeconds ?? 0)) * 1000
      const result = await keys.rotate(overlapMs, aheadMs)
      write(io.stdout, `new signing key ${result.active}, published now, signing from ${new Date(result.activateAt).toISOString()}`)
      for (const r of result.retiring) write(io.stdout, `still published until ${new Date(r.retireAt).toISOString()}: ${r.kid}`)
      if (overlapMs < longest) io.stderr.write(`warning: the overlap is shorter than the longest assertion ttl_s (${longest / 1000}s): tokens signed just before the rotation stop verifying before they expire\n`)
      return 0
    } finally {
      await runtime.close()
    }
  },
}
