import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createLogger } from './log.ts'

function capture(opts: Parameters<typeof createLogger>[1]) {
  let text = ''
  return { log: createLogger({ write: (line: string) => { text += line } }, { clock: () => 0, ...opts }), text: () => text }
}

describe('operator log', () => {
  it('writes JSON lines at or above its level', () => {
    const { log, text } = capture({ level: 'warn' })
    log.info('dropped')
    log.warn('kept', { a: 1 })
    assert.equal(log.infoEnabled, false)
    assert.equal(text(), '{"time":"1970-01-01T00:00:00.000Z","level":"warn","msg":"kept","a":1}\n')
  })

  it('writes each JSON line as the object of time, level, msg and the fields would be (fields named like those replace them)', () => {
    const cases: (Record<string, unknown> | undefined)[] = [undefined, {}, { a: 1 }, { u: undefined, n: null, s: 'a "q" \u2028', o: { deep: [1, 'x'] } }, { msg: 'mine', b: 2 }, { time: 't', level: 'l' }]
    for (const fields of cases) {
      const { log, text } = capture({})
      log.info('m "quoted"', fields)
      assert.equal(text(), `${JSON.stringify({ time: '1970-01-01T00:00:00.000Z', level: 'info', msg: 'm "quoted"', ...fields })}\n`)
    }
  })

  it('writes logfmt, quoting what needs it', () => {
    const { log, text } = capture({ format: 'logfmt' })
    log.info('request', { id: 'req_1', status: 200, none: null, skipped: undefined, spaced: 'a b', quoted: 'say "x"', nested: { why: 'no=way' }, 'bad key': 'v' })
    assert.equal(text(), 'time=1970-01-01T00:00:00.000Z level=info msg=request id=req_1 status=200 none=null spaced="a b" quoted="say \\"x\\"" nested="{\\"why\\":\\"no=way\\"}" bad_key=v\n')
  })

  it('batched: the lines of one turn go out in one write, at the end of the turn', async () => {
    const writes: string[] = []
    const log = createLogger({ write: (s: string) => writes.push(s) }, { batched: true, clock: () => 0 })
    log.info('one')
    log.info('two')
    assert.equal(writes.length, 0)
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(writes.length, 1)
    assert.equal(writes[0]?.split('\n').length, 3)
  })
})
