import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import { hashTaskKey, mintTaskKey, TASK_KEY_PATTERN, TASK_KEY_PREFIX } from './task-key.ts'

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'

describe('task keys', () => {
  it('mints kvt_ + 43 + 6 base62 chars, unique, hash = SHA-256 of the key', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 200; i++) {
      const { key, hash } = mintTaskKey()
      assert.match(key, /^kvt_[0-9A-Za-z]{49}$/)
      assert.ok(key.startsWith(TASK_KEY_PREFIX))
      assert.deepEqual(hash, createHash('sha256').update(key).digest())
      assert.deepEqual(hashTaskKey(key), hash)
      seen.add(key)
    }
    assert.equal(seen.size, 200)
  })

  it('rejects any single-character change (checksum)', () => {
    const { key } = mintTaskKey()
    for (let i = TASK_KEY_PREFIX.length; i < key.length; i++) {
      const current = key[i] as string
      const replacement = ALPHABET[(ALPHABET.indexOf(current) + 1) % 62] as string
      const typo = key.slice(0, i) + replacement + key.slice(i + 1)
      assert.equal(hashTaskKey(typo), undefined, `position ${i}`)
    }
  })

  it('rejects malformed strings', () => {
    const { key } = mintTaskKey()
    const bad = [
      '',
      'kvt_',
      key.slice(0, -1),
      key + 'a',
      'kvx_' + key.slice(4),
      'KVT_' + key.slice(4),
      key.slice(0, 10) + '-' + key.slice(11),
      ` ${key}`,
      `${key}\n`,
      'kvt_' + 'z'.repeat(49),
    ]
    for (const s of bad) assert.equal(hashTaskKey(s), undefined, JSON.stringify(s))
    assert.equal(hashTaskKey(42 as unknown as string), undefined)
  })

  it('TASK_KEY_PATTERN finds keys embedded in text', () => {
    const a = mintTaskKey().key
    const b = mintTaskKey().key
    const text = `GET /x?token=${a}&y=1\r\nX-Note: Bearer ${b}\r\n{"k":"${a}"}`
    const found = [...text.matchAll(TASK_KEY_PATTERN)].map((m) => m[0])
    assert.deepEqual(found, [a, b, a])
    assert.equal(TASK_KEY_PATTERN.flags.includes('g'), true)
    assert.deepEqual([...'no keys here kvt_short'.matchAll(TASK_KEY_PATTERN)], [])
  })
})
