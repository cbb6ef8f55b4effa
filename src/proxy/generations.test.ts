import assert from 'node:assert/strict'
import { test } from 'node:test'
import { AssertionKeys } from '../assertion/keys.ts'
import { parseConfig, type Config } from '../config/load.ts'
import type { Connector } from '../model/policy.ts'
import type { Vault } from '../vault/vault.ts'
import type { Composition } from './compose.ts'
import { Generations } from './generations.ts'

function config(paths: { keep: string; change: string }): Config {
  const connector = (name: string, path: string) => `  ${name}:
    upstream: https://${name}.example.com
    rules: [{ id: r, methods: [GET], path: ${path}, severity: read }]
`
  return parseConfig(`version: 1\nconnectors:\n${connector('keep', paths.keep)}${connector('change', paths.change)}`, '/tmp/keyvalet.yaml')
}

test('a reload keeps unchanged connectors and releases a changed one once the requests that started before it are over', () => {
  const released: string[] = []
  const composed: Config[] = []
  const generations = new Generations(config({ keep: '/k/**', change: '/a/**' }), {
    compose: (c) => {
      composed.push(c)
      return { admit: [], connectors: new Map() } satisfies Composition
    },
    assertionKeys: new AssertionKeys({} as Vault, Date.now),
    release: (c: Connector) => released.push(`${c.name}:${c.rules[0]?.paths[0]?.source}`),
  })
  const first = generations.current
  const inFlight = generations.enter()
  const second = generations.apply(config({ keep: '/k/**', change: '/b/**' }))
  assert.notEqual(second.version, first.version)
  assert.equal(generations.current, second)
  assert.equal(inFlight.generation, first, 'a request keeps the generation it entered')
  assert.equal(second.config.policy.connectors.get('keep'), first.config.policy.connectors.get('keep'), 'an unchanged connector keeps its object (its pool and tokens)')
  assert.notEqual(second.config.policy.connectors.get('change'), first.config.policy.connectors.get('change'))
  assert.deepEqual(released, [], 'nothing is released while a request of the first generation runs')
  inFlight.leave()
  inFlight.leave()
  assert.deepEqual(released, ['change:/a/**'], 'the changed connector is released once, the kept one never')
  // Nothing in flight: the generation a reload replaces is released at once.
  generations.apply(config({ keep: '/k2/**', change: '/b/**' }))
  assert.deepEqual(released, ['change:/a/**', 'keep:/k/**'])
  assert.equal(composed.length, 3)
})
