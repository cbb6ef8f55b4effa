import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { firstSubordinate } from './identity.ts'

describe('subordinate ids', () => {
  const user = { name: 'alice', id: 1000 }

  it('takes the first range of the user, named by name or by uid', () => {
    assert.equal(firstSubordinate('bob:100000:65536\nalice:165536:65536\nalice:400000:10\n', user), 165536)
    assert.equal(firstSubordinate('bob:100000:65536\n1000:231072:65536\n', user), 231072)
  })

  it('ignores other users, malformed lines and empty ranges', () => {
    assert.equal(firstSubordinate('', user), undefined)
    assert.equal(firstSubordinate('alicia:100000:65536\nalice:x:65536\nalice:100000\nalice:100000:0\nalice:1:2:3\n 10000:5:5\n', user), undefined)
    assert.equal(firstSubordinate('alice:100000:0\n  alice:300000:1  \n', user), 300000)
  })
})
