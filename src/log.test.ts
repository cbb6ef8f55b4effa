import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { spawnSync } from 'node:child_process'
import { BATCH_MAX_CHARS, BATCH_WINDOW_MS, createLogger } from './log.ts'

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

  it('batched: the lines logged within the window go out in one write at its end, and a burst at once', async () => {
    const writes: string[] = []
    const log = createLogger({ write: (s: string) => writes.push(s) }, { batched: true, clock: () => 0 })
    const started = performance.now()
    log.info('one')
    await new Promise((resolve) => setImmediate(resolve))
    log.info('two')
    assert.equal(writes.length, 0, 'nothing is written before the window ends')
    for (let waited = 0; writes.length === 0 && waited < 2000; waited += 5) await new Promise((resolve) => setTimeout(resolve, 5))
    const took = performance.now() - started
    assert.equal(writes.length, 1)
    assert.deepEqual(writes[0]?.split('\n').map((l) => (l === '' ? '' : JSON.parse(l).msg)), ['one', 'two', ''])
    assert.ok(took >= BATCH_WINDOW_MS - 1, `written after ${took} ms`)
    // A burst of more than BATCH_MAX_CHARS goes out as soon as that much waits, not at the window's end.
    const line = 'x'.repeat(1000)
    const lines = Math.ceil(BATCH_MAX_CHARS / 1000) + 1
    for (let i = 0; i < lines; i++) log.info(line)
    assert.equal(writes.length, 2, 'the burst was written at once')
    assert.ok((writes[1]?.length ?? 0) >= BATCH_MAX_CHARS)
  })

  it('batched: what waits is written when the process exits', () => {
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', `
      import { createLogger } from ${JSON.stringify(new URL('./log.ts', import.meta.url).href)}
      const log = createLogger(process.stdout, { batched: true, clock: () => 0 })
      log.info('before exit')
      process.exit(3)
    `], { encoding: 'utf8', timeout: 30_000 })
    assert.equal(child.status, 3, child.stderr)
    assert.equal(child.stdout, '{"time":"1970-01-01T00:00:00.000Z","level":"info","msg":"before exit"}\n')
  })
})
