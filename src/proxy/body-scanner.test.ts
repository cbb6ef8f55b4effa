import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { mintTaskKey } from '../sessions/task-key.ts'
import { BodyScanner } from './body-scanner.ts'

describe('BodyScanner', () => {
  const { key } = mintTaskKey()
  const scanAll = (chunks: string[]): string | undefined => {
    const scanner = new BodyScanner([{ connector: 'openai', value: 'sk-placeholder-abc' }])
    try {
      for (const c of chunks) scanner.scan(Buffer.from(c))
      return undefined
    } catch (err) {
      return (err as { code?: string }).code
    }
  }

  it('finds a task key split at every point across two chunks', () => {
    const text = `{"note":"${key}"}`
    for (let cut = 0; cut <= text.length; cut++) assert.equal(scanAll([text.slice(0, cut), text.slice(cut)]), 'task_key_misplaced', `cut ${cut}`)
  })

  it('finds a placeholder delivered a byte at a time', () => {
    assert.equal(scanAll([...'x sk-placeholder-abc y']), 'placeholder_misplaced')
  })

  it('lets ordinary bodies through, including ones that merely mention kvt_', () => {
    assert.equal(scanAll(['{"title":"a kvt_ prefix alone is fine"}', 'more']), undefined)
  })
})
