import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { startChildKeyvalet } from '../helpers/child-keyvalet.ts'

const EXAMPLE = fileURLToPath(new URL('../../examples/keyvalet.yaml', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'keyvalet-start-signal-'))
after(() => rmSync(dir, { recursive: true, force: true }))

// A supervisor may send SIGTERM the moment keyvalet says it is ready. Before, the handler was
// installed just after the last line was printed, and a signal in between killed keyvalet without
// its graceful stop (about one start in four on a busy machine): several starts make that show.
it('stops gracefully on a SIGTERM sent the moment it prints that it is ready', async () => {
  for (let run = 0; run < 8; run++) {
    const config = readFileSync(EXAMPLE, 'utf8')
      .replace(/^(\s+(?:gateway|forward|admin)): 127\.0\.0\.1:\d+$/gm, '$1: 127.0.0.1:0')
      .replace(/^data_dir: .*$/m, `data_dir: ${join(dir, `data-${run}`)}`)
    const file = join(dir, `keyvalet-${run}.yaml`)
    writeFileSync(file, config)
    const kv = await startChildKeyvalet({ configFile: file, env: { KEYVALET_MASTER_KEY: randomBytes(32).toString('base64') } })
    // Polled every turn of the event loop (not every few ms) to send it as early as a supervisor could; at most 20 s.
    for (const deadline = Date.now() + 20_000; Date.now() < deadline && !kv.stdout().includes('\ntry: ');) await new Promise((r) => setImmediate(r))
    const exit = await kv.stop('SIGTERM')
    assert.deepEqual(exit, { code: 0, signal: null }, `start ${run + 1}: ${kv.stdout()}`)
    assert.match(kv.stdout(), /stopping: finishing requests in flight/)
  }
})
