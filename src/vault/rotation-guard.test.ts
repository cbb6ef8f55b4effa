import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { InstanceReport } from '../store/store.ts'
import { decideRotation } from './rotation-guard.ts'

const NEW = 'aaaaaaaaaaaaaaaa'
const OLD = 'bbbbbbbbbbbbbbbb'

function instance(name: string, keyIds: string[]): InstanceReport {
  return { instance: name, host: `host-${name}`, pid: name.length, configVersion: 'cfg_0000000000000001', pushedSeq: undefined, keyIds, startedAt: 1, seenAt: 2 }
}

describe('decideRotation', () => {
  it('allows when every live instance holds the new key, as current or staged, and when none is live', () => {
    assert.deepEqual(decideRotation([instance('a', [NEW, OLD]), instance('b', [OLD, NEW]), instance('c', [NEW])], NEW), { allow: true })
    assert.deepEqual(decideRotation([], NEW), { allow: true })
  })

  it('refuses, naming each instance without the new key (id, host, pid) with the keys it holds, in order', () => {
    const verdict = decideRotation([instance('a', [NEW, OLD]), instance('bb', [OLD]), instance('ccc', [OLD, 'cccccccccccccccc'])], NEW)
    assert.deepEqual(verdict, {
      allow: false,
      unready: [
        { instance: 'bb', host: 'host-bb', pid: 2, why: `holds master key ${OLD}, not ${NEW}` },
        { instance: 'ccc', host: 'host-ccc', pid: 3, why: `holds master keys ${OLD}, cccccccccccccccc, not ${NEW}` },
      ],
    })
  })

  it('refuses an instance that reports no key ids: it cannot be shown to hold the new key', () => {
    const verdict = decideRotation([instance('old', [])], NEW)
    assert.equal(verdict.allow, false)
    assert.match(verdict.allow ? '' : (verdict.unready[0]?.why ?? ''), /reports no master key ids/)
  })
})
