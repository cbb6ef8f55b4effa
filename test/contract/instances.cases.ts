import assert from 'node:assert/strict'
import type { InstanceReport, InstanceRepo } from '../../src/store/store.ts'
import type { RepoCases } from './store.contract.ts'

function report(instance: string, startedAt: number, seenAt: number, configVersion = 'cfg_0000000000000001', pushedSeq?: number, keyIds: string[] = ['00112233445566aa']): InstanceReport {
  return { instance, host: `host-${instance}`, pid: 100 + startedAt, configVersion, pushedSeq, keyIds, startedAt, seenAt }
}

/** The instances part of the Store contract. */
export const instanceCases: RepoCases<InstanceRepo> = {
  report: {
    "replaces the instance's previous report, leaving the others": async (store) => {
      await store.instances.report(report('ins_a', 1, 10))
      await store.instances.report(report('ins_b', 2, 10))
      await store.instances.report(report('ins_a', 1, 20, 'cfg_0000000000000002'))
      assert.deepEqual(await store.instances.list(0), [report('ins_a', 1, 20, 'cfg_0000000000000002'), report('ins_b', 2, 10)])
    },
    'keeps the pushed sequence number in force, and its absence': async (store) => {
      await store.instances.report(report('ins_a', 1, 10, 'cfg_0000000000000001', 7))
      await store.instances.report(report('ins_b', 2, 10))
      assert.deepEqual(await store.instances.list(0), [report('ins_a', 1, 10, 'cfg_0000000000000001', 7), report('ins_b', 2, 10)])
      await store.instances.report(report('ins_a', 1, 11))
      assert.equal((await store.instances.list(0))[0]?.pushedSeq, undefined)
    },
    'keeps the master key ids each instance holds, in order, and none': async (store) => {
      await store.instances.report(report('ins_a', 1, 10, undefined, undefined, ['aaaaaaaaaaaaaaaa', '00112233445566aa']))
      await store.instances.report(report('ins_b', 2, 10, undefined, undefined, []))
      assert.deepEqual((await store.instances.list(0)).map((r) => r.keyIds), [['aaaaaaaaaaaaaaaa', '00112233445566aa'], []])
      await store.instances.report(report('ins_a', 1, 11, undefined, undefined, ['bbbbbbbbbbbbbbbb']))
      assert.deepEqual((await store.instances.list(0)).map((r) => r.keyIds), [['bbbbbbbbbbbbbbbb'], []])
    },
  },
  list: {
    'lists the instances seen at or after a time, by start then id': async (store) => {
      await store.instances.report(report('ins_c', 5, 30))
      await store.instances.report(report('ins_b', 5, 29))
      await store.instances.report(report('ins_a', 7, 31))
      await store.instances.report(report('ins_old', 1, 10))
      assert.deepEqual((await store.instances.list(29)).map((r) => r.instance), ['ins_b', 'ins_c', 'ins_a'])
      assert.deepEqual(await store.instances.list(32), [])
    },
  },
  remove: {
    'removes one report; false when there was none': async (store) => {
      await store.instances.report(report('ins_a', 1, 10))
      await store.instances.report(report('ins_b', 1, 10))
      assert.equal(await store.instances.remove('ins_a'), true)
      assert.equal(await store.instances.remove('ins_a'), false)
      assert.deepEqual((await store.instances.list(0)).map((r) => r.instance), ['ins_b'])
    },
  },
}
