import { loadConfig } from '../../config/load.ts'
import { OperatorError } from '../../errors.ts'
import { openRuntime } from '../../runtime.ts'
import { loadOrCreateCa } from '../../tls/ca-store.ts'
import { CONFIG_OPTION, configPath, parse, write } from '../args.ts'
import type { Command } from '../command.ts'

const help = `usage: keyvalet ca export [--config FILE]

Prints the certificate (PEM) of keyvalet's interception CA, which sandboxes must trust to use
the forward proxy (SSL_CERT_FILE, NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE, GIT_SSL_CAINFO,
CURL_CA_BUNDLE). The CA is created on first use; its private key stays encrypted in the vault
and is never printed.`

export const ca: Command = {
  name: 'ca',
  summary: "print the interception CA's certificate for sandboxes to trust",
  help,
  async run(args, io) {
    const { values, positionals } = parse(args, { ...CONFIG_OPTION }, help)
    if (positionals[0] !== 'export') throw new OperatorError(`unknown action ${JSON.stringify(positionals[0] ?? '')}`, 'use: keyvalet ca export')
    const config = loadConfig(configPath(values.config, io))
    const runtime = openRuntime(config, { env: io.env, createMasterKey: true })
    try {
      const { ca: material } = await loadOrCreateCa(runtime.vault)
      write(io.stdout, material.certPem.trimEnd())
      return 0
    } finally {
      await runtime.close()
    }
  },
}
