import assert from 'node:assert/strict'
import { it } from 'node:test'

it('runs on the pinned Node 24 or newer (npm scripts put node_modules/.bin first)', () => {
  assert.ok(Number(process.versions.node.split('.')[0]) >= 24, `running on ${process.version}`)
})
