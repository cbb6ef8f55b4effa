import { isAbsolute, resolve } from 'node:path'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { OperatorError } from '../errors.ts'
import type { Io } from './command.ts'

type Options = NonNullable<ParseArgsConfig['options']>

export const CONFIG_OPTION = { config: { type: 'string', short: 'c' } } as const satisfies Options

/** node:util parseArgs with strict checking, its errors turned into operator errors. */
export function parse<const O extends Options>(args: string[], options: O, help: string) {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true })
  } catch (err) {
    throw new OperatorError(err instanceof Error ? err.message : String(err), help.split('\n')[0])
  }
}

/** --config, else $KEYVALET_CONFIG, else ./keyvalet.yaml. */
export function configPath(value: string | boolean | undefined, io: Io): string {
  const chosen = typeof value === 'string' ? value : (io.env.KEYVALET_CONFIG ?? 'keyvalet.yaml')
  return isAbsolute(chosen) ? chosen : resolve(io.cwd, chosen)
}

export function write(stream: NodeJS.WritableStream | { write(s: string): unknown }, text: string): void {
  stream.write(text.endsWith('\n') ? text : `${text}\n`)
}
