import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const BIN = join(ROOT, 'bin', 'keyvalet')
const PROBE = fileURLToPath(new URL('./helpers/glibc-tunables.ts', import.meta.url))
const TRIM = 'glibc.malloc.trim_threshold=131072'

/** GLIBC_TUNABLES as the process bin/keyvalet starts has it. */
async function tunables(own: string | undefined): Promise<string[]> {
  const env = { PATH: process.env.PATH, NODE_OPTIONS: `--import=${PROBE}`, ...(own === undefined ? {} : { GLIBC_TUNABLES: own }) }
  const { stdout, stderr } = await run(BIN, ['--version'], { env, timeout: 60_000 })
  assert.match(stdout, /^keyvalet /)
  const m = /^glibc-tunables=(.*)$/m.exec(stderr)
  assert.ok(m !== null, stderr)
  return (m[1] ?? '').split(':').filter((t) => t !== '')
}

describe("bin/keyvalet fixes glibc's trim threshold (memory freed by native code goes back to the system)", () => {
  it('runs keyvalet with the trim threshold set to glibc\'s own default, which turns its dynamic raising off', async () => {
    assert.deepEqual(await tunables(undefined), [TRIM])
  })

  it("keeps the operator's other tunables beside it", async () => {
    assert.deepEqual(await tunables('glibc.malloc.arena_max=2'), ['glibc.malloc.arena_max=2', TRIM])
  })

  it("leaves the operator's own trim threshold in force", async () => {
    assert.deepEqual(await tunables('glibc.malloc.trim_threshold=1048576'), ['glibc.malloc.trim_threshold=1048576'])
  })
})
