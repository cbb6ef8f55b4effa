/**
 * Whether a resource rule's URI pattern (config.ts namePattern: `*` any run without `/`, `**` any
 * run) matches every URI an RFC 6570 URI template can expand to, so that a template may be shown
 * in resources/templates/list only when every resource it names could be read.
 *
 * The template is read as literal characters and expressions. A simple expression (`{name}`) and
 * the `.`, `;`, `?` and `&` operators percent-encode `/` in values, so they expand to a run without
 * `/`; the others (`{+x}`, `{#x}`, `{/x}`) may expand to any run. The pattern covers the template
 * when it matches it symbol by symbol: a literal only the same literal, `*` any literals but `/`
 * and runs without `/`, `**` anything. That is sound (if it says covered, every expansion
 * matches) and may say no for a pattern that covers a template in a roundabout way: the template
 * is then hidden, which is the safe side.
 */

type Symbol = { readonly literal: string } | { readonly run: 'no_slash' | 'any' }
type PatternSymbol = { readonly literal: string } | { readonly star: 'one' | 'any' }

/** An expression's variable list (RFC 6570 section 2.3): names, each with a prefix length or an explode. */
const VARSPEC = '(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2})(?:\\.?(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2}))*(?::[1-9][0-9]{0,3}|\\*)?'
const VARIABLES = new RegExp(`^${VARSPEC}(?:,${VARSPEC})*$`)

/** The most template or pattern characters compared (resource URIs in rules are at most 2048). */
const MAX_LENGTH = 2048

export function templateCovered(pattern: string, template: string): boolean {
  const t = templateSymbols(template)
  if (t === undefined || pattern.length > MAX_LENGTH) return false
  const p = patternSymbols(pattern)
  const seen = new Map<number, boolean>()
  const match = (i: number, j: number): boolean => {
    const key = i * (t.length + 1) + j
    const known = seen.get(key)
    if (known !== undefined) return known
    let result: boolean
    const ps = p[i]
    const ts = t[j]
    if (ps === undefined) result = ts === undefined
    else if ('literal' in ps) result = ts !== undefined && 'literal' in ts && ts.literal === ps.literal && match(i + 1, j + 1)
    else {
      // A star matches nothing more, or takes the next template symbol if it may.
      const takes = ts !== undefined && (ps.star === 'any' || ('literal' in ts ? ts.literal !== '/' : ts.run === 'no_slash'))
      result = match(i + 1, j) || (takes && match(i, j + 1))
    }
    seen.set(key, result)
    return result
  }
  return match(0, 0)
}

/** The template's symbols, or undefined when it is not a well-formed template (it is then never shown). */
function templateSymbols(template: string): Symbol[] | undefined {
  if (template.length > MAX_LENGTH) return undefined
  const out: Symbol[] = []
  for (let i = 0; i < template.length; i++) {
    const c = template[i] as string
    if (c === '}') return undefined
    if (c !== '{') {
      out.push({ literal: c })
      continue
    }
    const end = template.indexOf('}', i)
    if (end === -1) return undefined
    const expression = template.slice(i + 1, end)
    const operator = /^[+#./;?&]/.test(expression) ? expression[0] : ''
    if (!VARIABLES.test(operator === '' ? expression : expression.slice(1))) return undefined
    out.push({ run: operator === '' || operator === '.' || operator === ';' || operator === '?' || operator === '&' ? 'no_slash' : 'any' })
    i = end
  }
  return out
}

function patternSymbols(pattern: string): PatternSymbol[] {
  const out: PatternSymbol[] = []
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] !== '*') out.push({ literal: pattern[i] as string })
    else if (pattern[i + 1] === '*') {
      out.push({ star: 'any' })
      i++
    } else out.push({ star: 'one' })
  }
  return out
}
