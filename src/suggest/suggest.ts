import type { AuditRecord } from '../audit/record.ts'
import type { Policy, Severity } from '../model/policy.ts'

/**
 * Draft rules from the denials in the audit, for an operator to review; never applied.
 *
 * Algorithm: take the closing records refused (or reported, `would_deny`) because no rule fits
 * (`no_rule_for_path`, `method_not_allowed`), on a configured connector; take each record's path
 * below the connector's upstream base; group by connector, method and number of segments. In a
 * group, a segment position keeps its literal when every path has the same plain value there
 * (letters, digits, `-._~`) and becomes `:p<position>` otherwise: the narrowest pattern that
 * covers them all. The severity is the one the method implies: GET, HEAD, OPTIONS read; DELETE
 * admin; any other write.
 */
export interface SuggestedRule {
  readonly connector: string
  readonly id: string
  readonly method: string
  readonly path: string
  readonly severity: Severity
  /** Denials it covers, and a few of their paths. */
  readonly count: number
  readonly examples: readonly string[]
  /** The first and last denial it covers (ISO 8601). */
  readonly first: string
  readonly last: string
}

const FIXABLE: ReadonlySet<string> = new Set(['no_rule_for_path', 'method_not_allowed'])
const PLAIN = /^[A-Za-z0-9_~-][A-Za-z0-9._~-]*$/
const MAX_EXAMPLES = 3

export function suggestRules(records: Iterable<AuditRecord>, policy: Policy): SuggestedRule[] {
  const groups = new Map<string, { connector: string; method: string; paths: string[][]; examples: string[]; first: string; last: string }>()
  for (const r of records) {
    if (r.phase === 'open' || (r.decision !== 'deny' && r.decision !== 'would_deny') || !FIXABLE.has(r.reason) || r.connector === null || r.path === null) continue
    const connector = policy.connectors.get(r.connector)
    if (connector === undefined) continue
    const base = connector.upstream.pathname.replace(/\/$/, '')
    const below = base !== '' && r.path.startsWith(`${base}/`) ? r.path.slice(base.length) : r.path
    const segments = below.split('/').slice(1)
    const key = `${r.connector}\u0000${r.method}\u0000${segments.length}`
    const group = groups.get(key) ?? { connector: r.connector, method: r.method, paths: [], examples: [], first: r.time, last: r.time }
    group.paths.push(segments)
    if (group.examples.length < MAX_EXAMPLES && !group.examples.includes(below)) group.examples.push(below)
    group.last = r.time
    groups.set(key, group)
  }
  const taken = new Map<string, number>()
  return [...groups.values()].map((g) => {
    const first = g.paths[0] ?? []
    const same = (i: number, segment: string): boolean => g.paths.every((p) => p[i] === segment)
    // An empty last segment is a trailing '/', kept as the pattern's own when every path has it.
    const pattern = first.map((segment, i) => ((PLAIN.test(segment) || (segment === '' && i === first.length - 1)) && same(i, segment) ? segment : `:p${i + 1}`))
    const stem = `suggested-${g.method.toLowerCase()}`
    const n = (taken.get(`${g.connector}/${stem}`) ?? 0) + 1
    taken.set(`${g.connector}/${stem}`, n)
    return {
      connector: g.connector, id: `${stem}-${n}`, method: g.method, path: `/${pattern.join('/')}`, severity: severityOf(g.method),
      count: g.paths.length, examples: g.examples, first: g.first, last: g.last,
    }
  })
}

function severityOf(method: string): Severity {
  if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS') return 'read'
  return method === 'DELETE' ? 'admin' : 'write'
}

/** The drafts as YAML to paste under each connector's `rules`, each with what it covers in a comment. */
export function suggestionsYaml(rules: readonly SuggestedRule[]): string {
  if (rules.length === 0) return '# no denials that a rule could fix'
  const byConnector = Map.groupBy(rules, (r) => r.connector)
  const lines = ['# Drafts from denials in the audit: review each before adding it to the configuration.', 'connectors:']
  for (const [connector, drafts] of byConnector) {
    lines.push(`  ${connector}:`, `    rules:`)
    for (const d of drafts) {
      lines.push(`      # ${d.count} denied ${d.first} .. ${d.last}, e.g. ${d.examples.map((e) => JSON.stringify(e)).join(', ')}`)
      lines.push(`      - { id: ${d.id}, methods: [${d.method}], path: ${JSON.stringify(d.path)}, severity: ${d.severity} }`)
    }
  }
  return lines.join('\n')
}
