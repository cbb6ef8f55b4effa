import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { compilePathPattern } from './path-pattern.ts'
import { normalisePath } from './path.ts'

// [pattern, path, matches?]
const table: ReadonlyArray<readonly [string, string, boolean]> = [
  ['/repos/my-org/my-repo', '/repos/my-org/my-repo', true],
  ['/repos/my-org/my-repo', '/repos/my-org/other', false],
  ['/repos/my-org/my-repo', '/repos/my-org/my-repo/issues', false],
  ['/repos/my-org/my-repo', '/repos/my-org', false],
  ['/repos/my-org/my-repo', '/repos/my-org/my-repo/', false],
  ['/Repos', '/repos', false],
  ['/items/*', '/items/42', true],
  ['/items/*', '/items/', false],
  ['/items/*', '/items', false],
  ['/items/*', '/items/42/x', false],
  ['/items/*', '/items/42/', false],
  ['/items/:id', '/items/42', true],
  ['/items/:id/tags', '/items/42/tags', true],
  ['/items/:id/tags', '/items/42/labels', false],
  // '**' is one or more segments below the prefix: never the prefix itself, with or without '/'.
  ['/items/**', '/items', false],
  ['/items/**', '/items/', false],
  ['/items/**', '/items/a', true],
  ['/items/**', '/items/a/', true],
  ['/items/**', '/items/a/b/c', true],
  ['/items/**', '/items/a/b/', true],
  ['/items/**', '/itemsx', false],
  ['/items/**', '/other/items', false],
  ['/**', '/', false],
  ['/**', '/a', true],
  ['/**', '/anything/at/all', true],
  ['/', '/', true],
  ['/', '/a', false],
  ['/items/', '/items/', true],
  ['/items/', '/items', false],
  ['/items', '/items/', false],
  ['/files/a%20b', '/files/a%20b', true],
  ['/files/a%20b', '/files/a%20c', false],
  ['/files/%E2%82%AC', '/files/%e2%82%ac', true],
  ['/files/%2A', '/files/*', true],
  ['/files/%2A', '/files/x', false],
  ['/files/%3Aid', '/files/:id', true],
  ['/bucket/reports/**', '/bucket/reports', false],
  ['/bucket/reports/**', '/bucket/reports/2024/q1.csv', true],
  ['/bucket/reports/**', '/bucket/reportsx/a', false],
]

describe('compilePathPattern matches decoded segments', () => {
  for (const [pattern, path, expected] of table) {
    it(`${pattern} ${expected ? 'matches' : 'does not match'} ${path}`, () => {
      assert.equal(compilePathPattern(pattern).match(normalisePath(path).segments), expected)
    })
  }

  it('keeps the source for audit records and explain', () => {
    assert.equal(compilePathPattern('/items/:id').source, '/items/:id')
  })
})

const invalid: ReadonlyArray<readonly [string, string, RegExp]> = [
  ['a pattern without a leading slash', 'items', /must start with '\/'/],
  ['an empty pattern', '', /must start with '\/'/],
  ["'**' before the last segment", '/a/**/b', /only allowed as the last segment/],
  ["'*' inside a segment", '/a/b*', /must be a whole segment/],
  ["'**' inside a segment", '/a/x**', /must be a whole segment/],
  ['an empty segment', '/a//b', /empty segment/],
  ['a leading double slash', '//a', /empty segment/],
  ['a dot segment', '/a/./b', /'\.' segments are not allowed/],
  ['a dot-dot segment', '/a/../b', /'\.\.' segments are not allowed/],
  ['a bare colon', '/a/:', /not a valid :name/],
  ['a parameter name with a dash', '/a/:my-id', /not a valid :name/],
  ['an encoded slash in a literal', '/a%2Fb', /encoded_slash/],
  ['a double-encoded literal', '/a/%252e', /encoded_percent/],
  ['a matrix parameter in a literal', '/a;b', /matrix_parameter/],
  ['a raw space in a literal', '/a b', /character_not_allowed/],
  ['a literal ending in a dot', '/files/notes.', /trailing_dot/],
  ['a literal with a needless escape', '/files/%41', /needless_escape/],
  ['a literal some upstream reads as dot-dot', '/files/..%20', /dot_like_segment/],
]

describe('compilePathPattern refuses', () => {
  for (const [name, pattern, message] of invalid) {
    it(`${name} (${JSON.stringify(pattern)})`, () => {
      assert.throws(() => compilePathPattern(pattern), message)
    })
  }
})
