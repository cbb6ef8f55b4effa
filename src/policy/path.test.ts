import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { normalisePath, splitTarget } from './path.ts'
import { KeyvaletError } from '../errors.ts'

const refused: ReadonlyArray<readonly [string, string, string]> = [
  ['a path that does not start with a slash', 'a/b', 'not_absolute'],
  ['an empty path', '', 'not_absolute'],
  ['a dot-dot segment', '/a/../b', 'dot_segment'],
  ['a trailing dot-dot segment', '/a/..', 'dot_segment'],
  ['a dot segment', '/a/./b', 'dot_segment'],
  ['encoded dot-dot', '/a/%2e%2e/b', 'encoded_dot'],
  ['upper-case encoded dot-dot', '/a/%2E%2E/b', 'encoded_dot'],
  ['half-encoded dot-dot', '/a/.%2e/b', 'encoded_dot'],
  ['an encoded dot inside a name', '/a/file%2ejson', 'encoded_dot'],
  ['an encoded slash', '/a%2fb', 'encoded_slash'],
  ['an upper-case encoded slash', '/a%2Fb', 'encoded_slash'],
  ['a double-encoded dot', '/a/%252e', 'encoded_percent'],
  ['a double-encoded slash', '/a%252fb', 'encoded_percent'],
  ['a matrix parameter', '/a;b', 'matrix_parameter'],
  ['a matrix parameter on a dot-dot', '/a/..;/b', 'matrix_parameter'],
  ['an encoded semicolon', '/a%3bb', 'encoded_semicolon'],
  ['a leading double slash', '//a', 'empty_segment'],
  ['a double slash inside', '/a//b', 'empty_segment'],
  ['a double trailing slash', '/a//', 'empty_segment'],
  ['a raw backslash', '/a\\b', 'backslash'],
  ['an encoded backslash', '/a/%5cb', 'encoded_backslash'],
  ['an upper-case encoded backslash', '/a/%5Cb', 'encoded_backslash'],
  ['a lone byte that is not UTF-8', '/%ff', 'invalid_utf8'],
  ['an overlong UTF-8 dot', '/%c0%ae', 'invalid_utf8'],
  ['a truncated UTF-8 sequence', '/%e2%82', 'invalid_utf8'],
  ['an encoded NUL', '/a%00', 'control_character'],
  ['an encoded line feed', '/a%0a', 'control_character'],
  ['an encoded DEL', '/a%7f', 'control_character'],
  ['an encoded C1 control', '/a%c2%85', 'control_character'],
  ['a raw space', '/a b', 'character_not_allowed'],
  ['a raw tab', '/a\tb', 'character_not_allowed'],
  ['a raw non-ASCII character', '/é', 'character_not_allowed'],
  ['a raw double quote', '/a"b', 'character_not_allowed'],
  ['a raw angle bracket', '/a<b', 'character_not_allowed'],
  ['a fragment', '/a#b', 'fragment'],
  ['a question mark left in the path', '/a?b', 'query_in_path'],
  ['a percent sign without hex digits', '/a%', 'malformed_percent'],
  ['a percent sign with one hex digit', '/a%2', 'malformed_percent'],
  ['a percent sign with non-hex digits', '/a%zz', 'malformed_percent'],
  ['an IIS-style %u escape', '/a%u002e', 'malformed_percent'],
  ['an encoded letter', '/%41', 'needless_escape'],
  ['an encoded tilde', '/a%7Eb', 'needless_escape'],
  ['an encoded digit, dash and underscore', '/%31%2D%5F', 'needless_escape'],
  ['three dots', '/a/...', 'dot_like_segment'],
  ['dot-dot and an encoded space', '/a/..%20/b', 'dot_like_segment'],
  ['dot-dot, an NTFS stream', '/a/..::$INDEX_ALLOCATION/b', 'dot_like_segment'],
  ['a two-dot leader', '/a/%E2%80%A5/b', 'dot_like_segment'],
  ['fullwidth dots', '/a/%EF%BC%8E%EF%BC%8E/b', 'dot_like_segment'],
  ['a fullwidth solidus', '/a/x%EF%BC%8Fy', 'lookalike_character'],
  ['a division slash (Windows best fit)', '/a/x%E2%88%95y', 'lookalike_character'],
  ['a yen sign (a backslash in code page 932)', '/a/x%C2%A5y', 'lookalike_character'],
  ['a trailing dot', '/a/file.', 'trailing_dot'],
  ['a trailing dot before an NTFS stream', '/a/file.:x', 'trailing_dot'],
  ['a trailing encoded space', '/a/file%20', 'surrounding_whitespace'],
  ['a leading encoded space', '/a/%20file', 'surrounding_whitespace'],
  ['a trailing no-break space', '/a/file%C2%A0', 'surrounding_whitespace'],
  ['a trailing zero-width space', '/a/file%E2%80%8B', 'surrounding_whitespace'],
  ['only an encoded space', '/a/%20/b', 'surrounding_whitespace'],
]

function whyOf(fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof KeyvaletError)
    assert.equal(err.code, 'path_ambiguous')
    return err.detail?.['why']
  }
  assert.fail('expected path_ambiguous')
}

describe('normalisePath refuses', () => {
  for (const [name, raw, why] of refused) {
    it(`${name} (${JSON.stringify(raw)}) with why=${why}`, () => {
      assert.equal(whyOf(() => normalisePath(raw)), why)
    })
  }
})

const accepted: ReadonlyArray<readonly [string, string, readonly string[]]> = [
  ['the root path', '/', ['']],
  ['a plain path', '/repos/my-org/my-repo', ['repos', 'my-org', 'my-repo']],
  ['a trailing slash, kept as a last empty segment', '/a/', ['a', '']],
  ['an encoded euro sign, decoded', '/a/%E2%82%AC', ['a', '€']],
  ['an encoded space, decoded', '/a%20b', ['a b']],
  ['an encoded question mark, decoded', '/a%3Fb', ['a?b']],
  ['dots inside a name', '/v1.2/file.tar.gz', ['v1.2', 'file.tar.gz']],
  ['dots inside a name, three of them too', '/compare/main...dev', ['compare', 'main...dev']],
  ['a name starting with dots', '/.github/..a/.well-known', ['.github', '..a', '.well-known']],
  ['an encoded space inside a name', '/my%20file.txt', ['my file.txt']],
  ['an NTFS-looking stream on a real name, and a custom method', '/a.txt:x/v1:batchGet', ['a.txt:x', 'v1:batchGet']],
  ['encoded sub-delimiters, as SDKs that escape everything but unreserved send them', '/a%3Ab%40c%2C', ['a:b@c,']],
  ['sub-delimiters, colon and at-sign', "/a:b@c!$&'()*+,=~_-", ["a:b@c!$&'()*+,=~_-"]],
]

describe('normalisePath accepts', () => {
  for (const [name, raw, segments] of accepted) {
    it(`${name} (${JSON.stringify(raw)})`, () => {
      const result = normalisePath(raw)
      assert.deepEqual(result.segments, segments)
      assert.equal(result.path, raw, 'the raw path is kept unchanged for forwarding')
    })
  }
})

/**
 * Spellings some upstream reads as '.' or '..' (or as another segment after trimming): every
 * combination of a dot spelling, a count, and what surrounds it. All must be refused.
 */
function dotLikeSpellings(): string[] {
  const dots = ['.', '%2e', '%2E', '%EF%BC%8E' /* fullwidth */, '%E2%80%A4' /* one-dot leader */, '%EF%B9%92' /* small full stop */]
  const around = ['', '%20', '%09', '%0b', '%C2%A0', '%E3%80%80', '%E2%80%8B', '%EF%BB%BF', '%C2%AD', '.', ' ', '\t']
  const streams = ['', '::$DATA', ':$i30:$INDEX_ALLOCATION', ':x']
  const out = new Set<string>(['%E2%80%A5' /* two-dot leader */, '%E2%80%A6' /* ellipsis */, '%EF%BC%8E%2e', '.%E2%80%8B.'])
  for (const dot of dots) {
    for (const count of [1, 2, 3]) {
      for (const before of around) {
        for (const after of around) {
          for (const stream of streams) {
            const core = dot.repeat(count)
            if (before === '' && after === '' && stream === '' && count <= 2 && dot === '.') continue // plain '.' and '..': below
            out.add(before + core + after + stream)
          }
        }
      }
    }
  }
  return [...out]
}

describe('normalisePath refuses every generated dot-like spelling', () => {
  const spellings = dotLikeSpellings()
  it(`${spellings.length} spellings, in the middle and at the end of a path`, () => {
    const accepted: string[] = []
    for (const spelling of ['.', '..', ...spellings]) {
      for (const path of [`/a/${spelling}/b`, `/a/${spelling}`]) {
        try {
          normalisePath(path)
          accepted.push(path)
        } catch (err) {
          assert.ok(err instanceof KeyvaletError && err.code === 'path_ambiguous', `${path}: ${String(err)}`)
        }
      }
    }
    assert.deepEqual(accepted, [], 'no dot-like spelling is accepted')
  })
})

describe('splitTarget', () => {
  it('splits at the first question mark and keeps the rest of the query raw', () => {
    assert.deepEqual(splitTarget('/a/b?x=1&y=?'), { rawPath: '/a/b', rawQuery: 'x=1&y=?' })
  })

  it('returns an empty query when there is none', () => {
    assert.deepEqual(splitTarget('/a'), { rawPath: '/a', rawQuery: '' })
  })

  it('refuses a fragment anywhere in the target, query included', () => {
    assert.equal(whyOf(() => splitTarget('/a?x=1#frag')), 'fragment')
  })
})
