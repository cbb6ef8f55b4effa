import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, it } from 'node:test'
import type { Store } from '../../src/store/store.ts'
import { adminTokenCases } from './admin-tokens.cases.ts'
import { approvalCases } from './approvals.cases.ts'
import { auditCases } from './audit.cases.ts'
import { counterCases } from './counters.cases.ts'
import { instanceCases } from './instances.cases.ts'
import { pushedConfigCases } from './pushed-configs.cases.ts'
import { lockCases } from './locks.cases.ts'
import { secretCases } from './secrets.cases.ts'
import { sessionCases } from './sessions.cases.ts'

/** One case of the contract: runs against a fresh, empty store. */
export type ContractCase = (store: Store) => Promise<void>

/**
 * The cases of one repo, grouped by the method they are about (one group per method of the
 * interface, by type): a method added to a repo does not compile until it has its group here.
 */
export type RepoCases<Repo> = { readonly [Method in keyof Repo]: Readonly<Record<string, ContractCase>> }

/** Every repo of a Store, with its cases (approval signals are best-effort by contract: src/approvals/signals.test.ts). */
const REPOS: { readonly [Repo in Exclude<keyof Store, 'close' | 'approvalSignals' | 'pushedConfigSignals'>]: RepoCases<Store[Repo]> } = {
  sessions: sessionCases,
  secrets: secretCases,
  audit: auditCases,
  counters: counterCases,
  adminTokens: adminTokenCases,
  approvals: approvalCases,
  locks: lockCases,
  instances: instanceCases,
  pushedConfigs: pushedConfigCases,
}

/**
 * The Store contract, as node:test tests. Every Store implementation runs it:
 *   storeContract('sqlite', async () => SqliteStore.open(tmpFile()))
 * `makeStore` must return a fresh, empty store each call; the contract closes it after each test.
 * A new store operation adds its method to the repo interface (src/store/store.ts) and its cases
 * to that repo's file here (test/contract/<repo>.cases.ts).
 */
export function storeContract(
  name: string,
  makeStore: () => Promise<Store>,
  opts: { skip?: boolean | string } = {},
): void {
  describe(`Store contract: ${name}`, { skip: opts.skip ?? false }, () => {
    let store: Store
    beforeEach(async () => {
      store = await makeStore()
    })
    afterEach(async () => {
      await store.close()
    })

    for (const [repo, methods] of Object.entries(REPOS)) {
      describe(repo, () => {
        for (const [method, cases] of Object.entries(methods)) {
          assert.ok(Object.keys(cases).length > 0, `the store contract has no case for ${repo}.${method}`)
          for (const [title, run] of Object.entries(cases)) it(`${method}: ${title}`, () => run(store))
        }
      })
    }
  })
}
