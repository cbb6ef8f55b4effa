import { renameSync, writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { loadConfig } from '../../config/load.ts'
import { OperatorError } from '../../errors.ts'
import { openRuntime } from '../../runtime.ts'
import { loadOrCreateCa } from '../../tls/ca-store.ts'
import { baseCertificates, trustBundle, type BundleBase } from '../../tls/trust-bundle.ts'
import { CONFIG_OPTION, configPath, parse, write } from '../args.ts'
import type { Command } from '../command.ts'

const help = `usage: keyvalet ca export [--config FILE]
       keyvalet ca bundle [--base system|node|FILE] [--out FILE] [--config FILE]

export  prints the certificate (PEM) of keyvalet's interception CA. The CA is created on first
        use; its private key stays encrypted in the vault and is never printed.
bundle  prints (or writes to --out, mode 0644) the CA bundle sandboxes trust: keyvalet's CA and
        the CAs of --base, each once. SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE and
        GIT_SSL_CAINFO replace a tool's whole trust store: pointed at keyvalet's CA alone, every
        host the forward proxy tunnels without interception would fail. session create --env
        points them (and NODE_EXTRA_CA_CERTS) at this bundle.
        --base system  this machine's trusted CAs (the default; SSL_CERT_FILE and SSL_CERT_DIR
                       are honoured), right when the sandbox sees this machine's files
        --base node    the Mozilla CA list built into Node, for images without a CA store
        --base FILE    a PEM file, e.g. the sandbox image's /etc/ssl/certs/ca-certificates.crt`

export const ca: Command = {
  name: 'ca',
  help,
  async run(args, io) {
    const { values, positionals } = parse(args, { ...CONFIG_OPTION, base: { type: 'string' }, out: { type: 'string' } }, help)
    const action = positionals[0]
    if (action !== 'export' && action !== 'bundle') throw new OperatorError(`unknown action ${JSON.stringify(action ?? '')}`, 'use: keyvalet ca export | keyvalet ca bundle')
    if (action === 'export' && (values.base !== undefined || values.out !== undefined)) throw new OperatorError('--base and --out go with ca bundle')
    const base: BundleBase = values.base === undefined || values.base === 'system' ? 'system' : values.base === 'node' ? 'node' : { file: resolve(io.cwd, values.base) }
    const others = action === 'bundle' ? baseCertificates(base) : []
    if (action === 'bundle' && others.length === 0) throw new OperatorError('this machine has no trusted CA certificates (--base system)', 'use --base node (the Mozilla list built into Node), or --base FILE with the sandbox image\'s CA file')
    const config = loadConfig(configPath(values.config, io))
    const runtime = await openRuntime(config, { env: io.env, createMasterKey: true })
    try {
      const { ca: material } = await loadOrCreateCa(runtime.vault)
      if (action === 'export') {
        write(io.stdout, material.certPem.trimEnd())
        return 0
      }
      const bundle = trustBundle(material.certPem, others)
      if (values.out === undefined) {
        io.stdout.write(bundle.pem)
        return 0
      }
      // Beside the target, then renamed: a sandbox reading the file never sees half of it.
      const out = resolve(io.cwd, values.out)
      const partial = `${out}.${process.pid}.partial`
      writeFileSync(partial, bundle.pem, { mode: 0o644 })
      renameSync(partial, out)
      const from = typeof base === 'string' ? `--base ${base}` : base.file
      write(io.stderr, `wrote ${out}: keyvalet's CA and ${bundle.count - 1} CA certificates from ${from}`)
      return 0
    } finally {
      await runtime.close()
    }
  },
}
