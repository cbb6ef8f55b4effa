import { loadConfig } from '../../config/load.ts'
import { OperatorError } from '../../errors.ts'
import { openRuntime } from '../../runtime.ts'
import { keyvaletOwn, reservedName } from '../../vault/reserved.ts'
import { Vault } from '../../vault/vault.ts'
import { CONFIG_OPTION, configPath, parse, write } from '../args.ts'
import type { Command, Io } from '../command.ts'

const help = `usage: keyvalet secret <set|list|delete> [NAME] [--config FILE] [--json]

  set NAME      read the value from standard input (never from the command line, which other
                processes can see), encrypt it and store it; replaces an existing value at once
  list [--all]  names and metadata; values are never shown. keyvalet's own records (keyvalet.*:
                the interception CA, the audit and assertion keys) only with --all
  delete NAME   remove a secret

There is deliberately no command that prints a value.`

const MAX_SECRET_BYTES = 64 * 1024

export const secret: Command = {
  name: 'secret',
  summary: 'store credentials in the encrypted vault (write-only)',
  help,
  async run(args, io) {
    const { values, positionals } = parse(args, { ...CONFIG_OPTION, json: { type: 'boolean' }, all: { type: 'boolean' } }, help)
    const [action, name] = positionals
    const config = loadConfig(configPath(values.config, io))
    if (action === 'set' || action === 'delete') {
      if (name === undefined) throw new OperatorError(`secret ${action} needs a NAME`, help.split('\n')[0])
      Vault.validateName(name)
      const reserved = reservedName(name)
      if (reserved !== undefined) throw new OperatorError(reserved, 'choose another name')
    } else if (action !== 'list') {
      throw new OperatorError(`unknown action ${JSON.stringify(action ?? '')}`, 'use: keyvalet secret set NAME | list | delete NAME')
    }
    const runtime = await openRuntime(config, { env: io.env, createMasterKey: action === 'set' })
    try {
      if (action === 'set' && name !== undefined) {
        const value = await readSecretValue(io)
        await runtime.vault.put(name, value)
        value.fill(0)
        write(io.stdout, `stored secret ${name} (encrypted with master key ${runtime.master.keyId})`)
      } else if (action === 'delete' && name !== undefined) {
        if (!(await runtime.vault.delete(name))) throw new OperatorError(`no secret named ${name}`)
        write(io.stdout, `deleted secret ${name}`)
      } else {
        const list = (await runtime.vault.list()).filter((s) => values.all === true || !keyvaletOwn(s.name))
        if (values.json === true) write(io.stdout, JSON.stringify(list.map((s) => ({ name: s.name, key_id: s.keyId, created_at: iso(s.createdAt), updated_at: iso(s.updatedAt) }))))
        else if (list.length === 0) write(io.stdout, 'no secrets stored')
        else for (const s of list) write(io.stdout, `${s.name}\tupdated ${iso(s.updatedAt)}\tkey ${s.keyId}`)
      }
      return 0
    } finally {
      await runtime.close()
    }
  },
}

function iso(ms: number): string {
  return new Date(ms).toISOString()
}

/** The whole of stdin, less one trailing newline (what `echo` and editors add). */
async function readSecretValue(io: Io): Promise<Buffer> {
  if (io.stdin.isTTY === true) write(io.stderr, 'Type or paste the value, then press Enter and Ctrl-D:')
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of io.stdin as AsyncIterable<Buffer | string>) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    size += buf.length
    if (size > MAX_SECRET_BYTES) throw new OperatorError(`the value is larger than ${MAX_SECRET_BYTES} bytes`)
    chunks.push(buf)
  }
  let value = Buffer.concat(chunks)
  if (value.at(-1) === 0x0a) value = value.subarray(0, value.at(-2) === 0x0d ? -2 : -1)
  if (value.length === 0) throw new OperatorError('no value on standard input', 'pipe it in: printf %s "$TOKEN" | keyvalet secret set NAME')
  return Buffer.from(value)
}
