import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const BIN = join(ROOT, 'bin', 'keyvalet')
const PROBE = fileURLToPath(new URL('./helpers/young-generation.ts', import.meta.url))

async function youngGenerationMiB(nodeOptions: string): Promise<number> {
  const { stdout, stderr } = await run(BIN, ['--version'], { env: { PATH: process.env.PATH, NODE_OPTIONS: `${nodeOptions} --import=${PROBE}`.trim() }, timeout: 60_000 })
  assert.match(stdout, /^keyvalet /)
  const m = /young-generation-mib=(\d+)/.exec(stderr)
  assert.ok(m !== null, stderr)
  return Number(m[1])
}

describe("bin/keyvalet bounds V8's young generation (peak memory under load)", () => {
  it('runs keyvalet with a young generation of at most 2 × 16 MiB however much it allocates', async () => {
    assert.ok(await youngGenerationMiB('') <= 32)
  })

  it("leaves the operator's own --max-semi-space-size in NODE_OPTIONS in force", async () => {
    assert.ok(await youngGenerationMiB('--max-semi-space-size=64') > 32)
  })
})
