import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { AuditReserve } from './reserve.ts'

const root = mkdtempSync(join(tmpdir(), 'keyvalet-reserve-'))
after(() => rmSync(root, { recursive: true, force: true }))

describe('AuditReserve', () => {
  it('is made whole, given up, and made again; a short file is not a reserve', () => {
    const reserve = new AuditReserve(join(root, 'a-audit.db'), 256 * 1024)
    assert.equal(reserve.roomy(), false, 'nothing held yet')
    assert.equal(reserve.restore(), true)
    assert.equal(statSync(reserve.path).size, 256 * 1024)
    assert.equal(reserve.roomy(), true)
    reserve.release()
    assert.equal(reserve.roomy(), false)
    reserve.release() // twice is fine
    writeFileSync(reserve.path, 'short')
    assert.equal(reserve.roomy(), false)
    assert.equal(reserve.restore(), true)
    assert.equal(statSync(reserve.path).size, 256 * 1024)
    assert.deepEqual(readdirSync(root).filter((name) => name.endsWith('.tmp')), [], 'no temporary file left behind')
  })

  it('refuses to make a reserve the file system has no room for', () => {
    const reserve = new AuditReserve(join(root, 'b-audit.db'), Number.MAX_SAFE_INTEGER - 1)
    assert.equal(reserve.restore(), false)
    assert.equal(reserve.roomy(), false)
    assert.deepEqual(readdirSync(root).filter((name) => name.startsWith('b-')), [])
  })
})
