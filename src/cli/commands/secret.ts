import type { AdminClient } from '../../admin/client.ts'
import { loadConfig } from '../../config/load.ts'
import { OperatorError } from '../../errors.ts'
import { openRuntime } from '../../runtime.ts'
import { keyvaletOwn, reservedName } from '../../vault/reserved.ts'
import { Vault } from '../../vault/vault.ts'
import { CONFIG_OPTION, configPath, parse, write } from '../args.ts'
import type { Command, Io } from '../command.ts'
import { remoteClient, SERVER_OPTION } from '../remote.ts'

const help = `usage: keyvalet secret <set|list|delete> [NAME] [--config FILE] [--json]

  set NAME      read the value from standard input (never from the command line, which other
                processes can see), encrypt it and store it; replaces an existing value at once
  list [--all]  names and metadata; values are never shown. keyvalet's own records (keyvalet.*:
                the interception CA, the audit and assertion keys) only with --all
  delete NAME   remove a secret

--server URL    do it through the admin API of a running keyvalet (listen.admin) instead of the
                local database, with an admin token of role admin in KEYVALET_ADMIN_TOKEN; the
                value then goes as UTF-8 text
There is deliberately no command that prints a value.`

const MAX_SECRET_BYTES = 64 * 1024

export const secret: Command = {
  name: 'secret',
  help,
  async run(args, io) {
    const { values, positionals } = parse(args, { ...CONFIG_OPTION, ...SERVER_OPTION, json: { type: 'boolean' }, all: { type: 'boolean' } }, help)
    const [action, name] = positionals
    if (action === 'set' || action === 'delete') {
      if (name === undefined) throw new OperatorError(`secret ${action} needs a NAME`, help.split('\n')[0])
      Vault.validateName(name)
      const reserved = reservedName(name)
      if (reserved !== undefined) throw new OperatorError(reserved, 'choose another name')
    } else if (action !== 'list') {
      throw new OperatorError(`unknown action ${JSON.stringify(action ?? '')}`, 'use: keyvalet secret set NAME | list | delete NAME')
    }
    if (values.server !== undefined) return remoteSecret(remoteClient(values.server, io), action, name, values.all === true, values.json === true, io)
    const config = loadConfig(configPath(values.config, io))
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
        printList(list.map((s) => ({ name: s.name, key_id: s.keyId, created_at: iso(s.createdAt), updated_at: iso(s.updatedAt) })), values.json === true, io)
      }
      return 0
    } finally {
      await runtime.close()
    }
  },
}

async function remoteSecret(admin: AdminClient, action: string, name: string | undefined, all: boolean, json: boolean, io: Io): Promise<number> {
  if (action === 'set' && name !== undefined) {
    const value = await readSecretValue(io)
    let text: string
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(value)
    } catch {
      throw new OperatorError('with --server the value must be UTF-8 text', 'store a binary value on the keyvalet host, without --server')
    } finally {
      value.fill(0)
    }
    const stored = await admin.call('secret.set', { params: { name }, body: { value: text } })
    write(io.stdout, `stored secret ${name} (encrypted with master key ${stored.key_id})`)
  } else if (action === 'delete' && name !== undefined) {
    await admin.call('secret.delete', { params: { name } })
    write(io.stdout, `deleted secret ${name}`)
  } else printList((await admin.call('secret.list', { query: { all } })).secrets, json, io)
  return 0
}

function printList(list: readonly { name: string; key_id: string; created_at: string; updated_at: string }[], json: boolean, io: Io): void {
  if (json) write(io.stdout, JSON.stringify(list))
  else if (list.length === 0) write(io.stdout, 'no secrets stored')
  else for (const s of list) write(io.stdout, `${s.name}\tupdated ${s.updated_at}\tkey ${s.key_id}`)
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
