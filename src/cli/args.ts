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

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** `90s`, `30m`, `1h`, `2d` → milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+)([smhd])$/.exec(text.trim())
  const unit = match?.[2]
  if (match === null || unit === undefined) throw new OperatorError(`not a duration: ${JSON.stringify(text)}`, 'use a number and a unit, e.g. 90s, 30m, 1h, 2d')
  return Number(match[1]) * (UNITS[unit] ?? 0)
}

export function write(stream: NodeJS.WritableStream | { write(s: string): unknown }, text: string): void {
  stream.write(text.endsWith('\n') ? text : `${text}\n`)
}
