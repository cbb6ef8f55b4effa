import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { startChildKeyvalet } from '../helpers/child-keyvalet.ts'

const EXAMPLE = fileURLToPath(new URL('../../examples/keyvalet.yaml', import.meta.url))
const PRELOAD = fileURLToPath(new URL('../helpers/heap-report.ts', import.meta.url))
const MiB = 1024 * 1024

describe('what a serving keyvalet holds in memory: start-up leaves no grown heap behind', () => {
  const dir = mkdtempSync(join(tmpdir(), 'keyvalet-startup-memory-'))
  after(() => rmSync(dir, { recursive: true, force: true }))

  it("keyvalet start gives back the young generation start-up grew (it held ~20 MiB committed, empty), and leaves --expose-gc unset", async () => {
    const config = readFileSync(EXAMPLE, 'utf8')
      .replace(/^(\s+(?:gateway|forward|admin)): 127\.0\.0\.1:\d+$/gm, '$1: 127.0.0.1:0')
      .replace(/^data_dir: .*$/m, `data_dir: ${join(dir, 'data')}`)
    const file = join(dir, 'keyvalet.yaml')
    writeFileSync(file, config)
    const reportFile = join(dir, 'heap.json')
    const kv = await startChildKeyvalet({
      configFile: file,
      env: { KEYVALET_MASTER_KEY: randomBytes(32).toString('base64'), HEAP_REPORT_FILE: reportFile, NODE_OPTIONS: `--import=${PRELOAD}` },
    })
    try {
      for (let waited = 0; waited < 20_000 && !kv.stdout().includes('\ntry: '); waited += 50) await new Promise((r) => setTimeout(r, 50))
      process.kill(kv.pid, 'SIGUSR2')
      for (let waited = 0; waited < 10_000 && !existsSync(reportFile); waited += 50) await new Promise((r) => setTimeout(r, 50))
      const report = JSON.parse(readFileSync(reportFile, 'utf8')) as { committed: Record<string, number>; gcInNewContext: string }
      const newSpace = report.committed.new_space
      assert.ok(newSpace !== undefined && newSpace <= 4 * MiB, `new space committed: ${((newSpace ?? Number.NaN) / MiB).toFixed(1)} MiB`)
      assert.equal(report.gcInNewContext, 'undefined', '--expose-gc is still set')
    } finally {
      const exit = await kv.stop('SIGTERM')
      assert.equal(exit.code, 0, `${JSON.stringify(exit)} ${kv.stderr()} ${kv.stdout()}`)
    }
  })
})
