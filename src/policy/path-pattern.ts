/**
 * Path patterns of connector rules, compiled once at load into an array of parts.
 *
 * Syntax (matched against the decoded segments from policy/path.ts, below the connector):
 *   - A pattern starts with '/'; segments are separated by '/'.
 *   - A literal segment matches exactly (case-sensitive). It may contain percent escapes, decoded
 *     at compile time (`/files/a%20b` matches the segment `a b`); write `%3A` for a literal that
 *     starts with ':' and `%2A` for a literal '*'. A literal must be canonical as a request's
 *     segment must be (policy/path.ts: no %2F, %2E, %41, trailing dot...): any other could never match.
 *   - `*` or `:name` matches exactly one non-empty segment (`name` is for the reader: [A-Za-z_][A-Za-z0-9_]*).
 *   - `**` matches one or more segments, the first non-empty: everything below the prefix (a
 *     trailing '/' included), never the prefix itself (`/a/**` matches `/a/b` and `/a/b/c/`, not
 *     `/a` nor `/a/`; `/**` everything but `/`). Only as the LAST segment. A rule that should allow
 *     the prefix too lists it: `path: [/a, /a/**]`.
 *   - A pattern ending in '/' matches only a path with a trailing '/' (`/a/` matches `/a/`, not `/a`);
 *     a pattern not ending in '/' or `**` never matches a path with one. `/` matches only the root.
 *   - Anything else — '*' inside a segment, empty segments ('//'), '.' or '..' segments — is an error.
 */

import type { PathMatcher } from '../model/policy.ts'
import { normalisePath } from './path.ts'
import { KeyvaletError } from '../errors.ts'

type Part = { readonly kind: 'literal'; readonly value: string } | { readonly kind: 'one' } | { readonly kind: 'rest' }

const PARAM_NAME = /^:[A-Za-z_][A-Za-z0-9_]*$/

/** Throws an Error naming the problem; the loader turns it into a located config error. */
export function compilePathPattern(source: string): PathMatcher {
  if (!source.startsWith('/')) throw new Error(`path pattern ${JSON.stringify(source)} must start with '/'`)
  const raw = source.slice(1).split('/')
  const parts: Part[] = raw.map((segment, i) => compileSegment(source, segment, i === raw.length - 1))
  const last = parts[parts.length - 1]
  const rest = last?.kind === 'rest'
  const fixed = rest ? parts.slice(0, -1) : parts
  return {
    source,
    match(segments) {
      if (rest ? segments.length <= fixed.length || segments[fixed.length] === '' : segments.length !== fixed.length) return false
      for (let i = 0; i < fixed.length; i++) {
        const part = fixed[i] as Part
        const segment = segments[i] as string
        if (part.kind === 'literal' ? segment !== part.value : segment === '') return false
      }
      return true
    },
  }
}

function compileSegment(source: string, segment: string, isLast: boolean): Part {
  const fail = (why: string): never => {
    throw new Error(`path pattern ${JSON.stringify(source)}: ${why}`)
  }
  if (segment === '**') return isLast ? { kind: 'rest' } : fail("'**' is only allowed as the last segment")
  if (segment === '*') return { kind: 'one' }
  if (segment.startsWith(':')) {
    if (!PARAM_NAME.test(segment)) fail(`${JSON.stringify(segment)} is not a valid :name ([A-Za-z_][A-Za-z0-9_]*)`)
    return { kind: 'one' }
  }
  if (segment.includes('*')) fail(`'*' must be a whole segment (${JSON.stringify(segment)}); write %2A for a literal '*'`)
  if (segment === '') {
    // Only the final segment may be empty: that is the trailing '/'.
    if (!isLast) fail("empty segment ('//' or a leading '//')")
    return { kind: 'literal', value: '' }
  }
  if (segment === '.' || segment === '..') fail(`'${segment}' segments are not allowed`)
  try {
    return { kind: 'literal', value: normalisePath('/' + segment).segments[0] as string }
  } catch (err) {
    const why = err instanceof KeyvaletError ? ` (${String(err.detail?.['why'])})` : ''
    return fail(`${JSON.stringify(segment)} is not a valid literal segment${why}: a request with it would be refused`)
  }
}
