import type { OpenStream } from './streams.ts'
import { chainName, type AuditVerification } from './verify.ts'

/** What `audit verify` (and `db status`) print: the chains with their counts and last hashes, or where the log breaks. */
export function verdictText(result: AuditVerification): string {
  if (!result.ok) {
    return `BROKEN in ${chainName(result.instance)} at record ${result.seq} (${result.problem}): ${result.message}; ${result.count} records before it verified`
  }
  const chains = result.chains.map((c) => `\n  ${chainName(c.instance)}: ${c.count} records, last hash ${c.lastHash}${openStreams(c.open)}`)
  return `ok: ${result.count} records in ${result.chains.length} chain${result.chains.length === 1 ? '' : 's'}, every chain intact${chains.join('')}`
}


function openStreams(open: readonly Pick<OpenStream, 'seq' | 'request_id'>[]): string {
  if (open.length === 0) return ''
  const named = open.slice(0, 20).map((s) => `${s.seq} (${s.request_id})`).join(', ')
  return `; ${open.length} stream${open.length === 1 ? '' : 's'} open (in flight now, or cut off by a crash of keyvalet): record ${named}${open.length > 20 ? ', …' : ''}`
}
