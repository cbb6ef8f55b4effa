/**
 * Request-path normalisation, done by refusing rather than repairing.
 *
 * The path keyvalet checks is the path it forwards, byte for byte. So anything an upstream (or a
 * proxy in front of it) might read differently from us — dot segments, encoded separators,
 * double encoding, matrix parameters, backslashes, empty segments — is refused with
 * `path_ambiguous` and a short snake_case `why` in the error detail.
 *
 * Only canonical segments pass (docs/security.md states the same rule):
 *   1. raw characters are RFC 3986 unreserved (A-Z a-z 0-9 - . _ ~) or ! $ & ' ( ) * + , = : @;
 *   2. a percent escape is used only where it is needed: never for an unreserved character, nor
 *      for / % \ ; (those change how the path splits); it decodes to UTF-8 without controls;
 *   3. no common reading of the decoded segment (segment.ts) makes it a dot segment, a separator,
 *      or something else than itself once trailing dots and surrounding whitespace are trimmed.
 */

import { KeyvaletError } from '../errors.ts'
import { segmentProblem } from './segment.ts'

export interface NormalisedPath {
  /** Percent-decoded segments; a trailing '/' gives a last segment ''. '/' gives ['']. */
  readonly segments: string[]
  /** The validated raw path, unchanged: safe to forward because nothing in it is ambiguous. */
  readonly path: string
}

/** Splits a request target at the first '?'. Refuses '#' anywhere: a request target has no fragment. */
export function splitTarget(target: string): { rawPath: string; rawQuery: string } {
  if (target.includes('#')) refuse('fragment')
  const q = target.indexOf('?')
  if (q < 0) return { rawPath: target, rawQuery: '' }
  return { rawPath: target.slice(0, q), rawQuery: target.slice(q + 1) }
}

export function normalisePath(rawPath: string): NormalisedPath {
  if (!rawPath.startsWith('/')) refuse('not_absolute')
  const rawSegments = rawPath.slice(1).split('/')
  const segments: string[] = []
  for (let i = 0; i < rawSegments.length; i++) {
    const raw = rawSegments[i] as string
    const isLast = i === rawSegments.length - 1
    if (raw === '' && !isLast) refuse('empty_segment')
    if (raw === '.' || raw === '..') refuse('dot_segment')
    const segment = decodeSegment(raw)
    const problem = segmentProblem(segment)
    if (problem !== undefined) refuse(problem)
    segments.push(segment)
  }
  return { segments, path: rawPath }
}

/** Escapes refused outright: they decode to a character that changes how the path splits or reads. */
const REFUSED_ESCAPES: Readonly<Record<string, string>> = {
  '2f': 'encoded_slash',
  '2e': 'encoded_dot',
  '25': 'encoded_percent',
  '5c': 'encoded_backslash',
  '3b': 'encoded_semicolon',
}

/** ignoreBOM keeps a leading U+FEFF as a character: stripping it would make `%EF%BB%BF..` read as `..`. */
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

function decodeSegment(raw: string): string {
  let escaped = false
  for (let i = 0; i < raw.length; i++) {
    const code = raw.charCodeAt(i)
    if (code === 0x25 /* % */) {
      const hex = raw.slice(i + 1, i + 3)
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) refuse('malformed_percent')
      const refused = REFUSED_ESCAPES[hex.toLowerCase()]
      if (refused !== undefined) refuse(refused)
      if (UNRESERVED.has(String.fromCharCode(parseInt(hex, 16)))) refuse('needless_escape')
      escaped = true
      i += 2
    } else {
      checkRawChar(raw[i] as string, code)
    }
  }
  return escaped ? decodeBytes(toBytes(raw)) : raw
}

/** The bytes a validated segment stands for (every raw character is ASCII by now). */
function toBytes(raw: string): Uint8Array {
  const out: number[] = []
  for (let i = 0; i < raw.length; i++) {
    if (raw.charCodeAt(i) === 0x25) {
      out.push(parseInt(raw.slice(i + 1, i + 3), 16))
      i += 2
    } else {
      out.push(raw.charCodeAt(i))
    }
  }
  return Uint8Array.from(out)
}

function decodeBytes(bytes: Uint8Array): string {
  let text: string
  try {
    text = utf8.decode(bytes)
  } catch {
    refuse('invalid_utf8')
  }
  if (/[\u0000-\u001f\u007f-\u009f]/u.test(text)) refuse('control_character')
  return text
}

/** RFC 3986 pchar without '%' (handled by the caller) and without ';' (matrix parameters). */
function checkRawChar(ch: string, code: number): void {
  if (ch === '\\') refuse('backslash')
  if (ch === ';') refuse('matrix_parameter')
  if (ch === '#') refuse('fragment')
  if (ch === '?') refuse('query_in_path')
  if (code > 0x7e || !PCHAR.has(ch)) refuse('character_not_allowed')
}

const UNRESERVED: ReadonlySet<string> = new Set('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~')
const PCHAR: ReadonlySet<string> = new Set([...UNRESERVED, ..."!$&'()*+,=:@"])

function refuse(why: string): never {
  throw new KeyvaletError('path_ambiguous', { detail: { why } })
}
