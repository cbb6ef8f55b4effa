/**
 * The admin API's input checks, done by the server from a route's schemas before its handler
 * runs: params, query and body against their typebox schemas (unknown fields refused at the top
 * level whatever the schema says), the body read as JSON within a size bound. Every refusal is a
 * KeyvaletError whose message names the field as the caller wrote it (`body.agent`, `query.limit`).
 */
import type { IncomingMessage } from 'node:http'
import type { TSchema } from 'typebox'
import * as S from 'typebox/schema'
import { KeyvaletError } from '../errors.ts'

export type Part = 'params' | 'query' | 'body'

/** A checker for one part of a route's input: the value, or admin_request_invalid naming the field. */
export function compileInput(part: Part, schema: TSchema | undefined): (value: unknown) => unknown {
  if (schema === undefined) {
    return (value) => {
      const extra = typeof value === 'object' && value !== null ? Object.keys(value)[0] : undefined
      if (extra !== undefined) throw invalid(`${part} has an unknown field ${JSON.stringify(extra)}`)
      return value
    }
  }
  const closed = (schema as { type?: unknown }).type === 'object' ? { ...schema, additionalProperties: false } : schema
  const validator = S.Compile(closed as unknown as S.XSchema)
  return (value) => {
    const [, errors] = validator.Errors(value)
    const first = errors[0]
    if (first === undefined) return value
    const at = [part, ...first.instancePath.split('/').slice(1).map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'))].join('.')
    if (first.keyword === 'boolean' || first.keyword === 'additionalProperties') throw invalid(`${at.slice(0, at.lastIndexOf('.'))} has an unknown field ${JSON.stringify(at.slice(at.lastIndexOf('.') + 1))}`)
    if (first.keyword === 'required') throw invalid(`${at}.${String((first.params as { requiredProperties?: string[] }).requiredProperties?.[0])} is required`)
    throw invalid(`${at}: ${first.message}`)
  }
}

/**
 * Control characters (C0 and DEL) are never part of a name, an id or a filter value, and a
 * PostgreSQL text value cannot hold NUL: refused in params and query, for every store alike.
 */
const CONTROL = /[\u0000-\u001f\u007f]/

/**
 * The query string as an object for `schema`: a field the schema declares as an array takes every
 * value; numbers and booleans are read from their text; any other field given twice is refused.
 */
export function queryObject(search: URLSearchParams, schema: TSchema | undefined): Record<string, unknown> {
  const properties = ((schema as { properties?: Record<string, { type?: unknown }> } | undefined)?.properties) ?? {}
  const out: Record<string, unknown> = {}
  for (const name of new Set(search.keys())) {
    const values = search.getAll(name)
    if (values.some((v) => CONTROL.test(v))) throw invalid(`query.${name} holds a control character`)
    const type = properties[name]?.type
    if (type === 'array') out[name] = values
    else if (values.length > 1) throw invalid(`query.${name} is given more than once`)
    else out[name] = readScalar(values[0] as string, type)
  }
  return out
}

function readScalar(text: string, type: unknown): unknown {
  if ((type === 'integer' || type === 'number') && /^-?[0-9]{1,15}(\.[0-9]{1,15})?$/.test(text)) return Number(text)
  if (type === 'boolean' && (text === 'true' || text === 'false')) return text === 'true'
  return text
}

/** A path parameter, percent-decoded; malformed encoding is refused. */
export function decodeParam(name: string, raw: string): string {
  let value: string
  try {
    value = decodeURIComponent(raw)
  } catch {
    throw invalid(`params.${name} is not valid percent-encoding`)
  }
  if (CONTROL.test(value)) throw invalid(`params.${name} holds a control character`)
  return value
}

/**
 * The request body as JSON, at most `limit` bytes: admin_body_too_large beyond it (from
 * Content-Length before reading, or while reading), admin_media_type unless it is JSON,
 * admin_request_invalid when it does not parse. `undefined` with bytes 0 when there is none.
 */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<{ value: unknown; bytes: number }> {
  const declared = req.headers['content-length']
  if (declared === undefined && req.headers['transfer-encoding'] === undefined) return { value: undefined, bytes: 0 }
  if (declared !== undefined && Number(declared) > limit) throw new KeyvaletError('admin_body_too_large', { detail: { limit } })
  const chunks: Buffer[] = []
  let bytes = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    bytes += chunk.length
    if (bytes > limit) throw new KeyvaletError('admin_body_too_large', { detail: { limit } })
    chunks.push(chunk)
  }
  if (bytes === 0) return { value: undefined, bytes: 0 }
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase()
  if (type !== 'application/json') throw new KeyvaletError('admin_media_type')
  try {
    return { value: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown, bytes }
  } catch {
    throw invalid('body is not valid JSON')
  }
}

export function invalid(message: string): KeyvaletError {
  return new KeyvaletError('admin_request_invalid', { message })
}
