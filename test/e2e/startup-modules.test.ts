import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { startChildKeyvalet } from '../helpers/child-keyvalet.ts'

const EXAMPLE = fileURLToPath(new URL('../../examples/keyvalet.yaml', import.meta.url))
const PRELOAD = fileURLToPath(new URL('../helpers/loaded-modules.ts', import.meta.url))

describe('what a serving keyvalet holds in memory: modules it does not need are not loaded', () => {
  const dir = mkdtempSync(join(tmpdir(), 'keyvalet-startup-modules-'))
  after(() => rmSync(dir, { recursive: true, force: true }))

  it("keyvalet start on SQLite with the example configuration loads neither the PostgreSQL driver, nor jose (no assertion made yet), nor Node's bundled undici, nor typebox's value operations", async () => {
    const config = readFileSync(EXAMPLE, 'utf8')
      .replace(/^(\s+(?:gateway|forward|admin)): 127\.0\.0\.1:\d+$/gm, '$1: 127.0.0.1:0')
      .replace(/^data_dir: .*$/m, `data_dir: ${join(dir, 'data')}`)
    const file = join(dir, 'keyvalet.yaml')
    writeFileSync(file, config)
    const modulesFile = join(dir, 'modules.txt')
    const kv = await startChildKeyvalet({
      configFile: file,
      env: { KEYVALET_MASTER_KEY: randomBytes(32).toString('base64'), LOADED_MODULES_FILE: modulesFile, NODE_OPTIONS: `--import=${PRELOAD}` },
    })
    // The last line keyvalet start prints before it waits for a signal.
    for (let waited = 0; waited < 20_000 && !kv.stdout().includes('\ntry: '); waited += 50) await new Promise((r) => setTimeout(r, 50))
    const exit = await kv.stop('SIGTERM')
    assert.equal(exit.code, 0, `${JSON.stringify(exit)} ${kv.stderr()} ${kv.stdout()}`)
    const loaded = readFileSync(modulesFile, 'utf8').split('\n')
    const from = (pkg: string): string[] => loaded.filter((u) => u.includes(`/node_modules/${pkg}/`))
    // The hook saw the modules the data plane does need.
    assert.ok(from('undici').length > 0, 'the preload recorded no undici module: it did not run')
    assert.ok(loaded.some((u) => u.endsWith('/src/store/sqlite-store.ts')))
    assert.deepEqual(from('postgres'), [], 'the PostgreSQL driver is loaded although the store is SQLite')
    assert.deepEqual(loaded.filter((u) => u.endsWith('/src/store/postgres-store.ts')), [])
    assert.deepEqual(from('jose'), [], 'jose is loaded although no assertion was made')
    // The configuration's defaults are filled in by schema-kit/defaults.ts: typebox's value operations (~140 modules more) stay unloaded.
    assert.deepEqual(from('typebox').filter((u) => u.includes('/build/value/')), [], 'typebox/value is loaded')
    // node:http's ESM facade reads every export, its lazy WebSocket getter too, which loads Node's
    // own bundled undici (fetch, WebSocket: ~13 MiB of RSS) that keyvalet never uses.
    assert.ok(loaded.includes('NativeModule http'), 'the preload recorded no builtin: it did not run')
    assert.deepEqual(loaded.filter((m) => m.includes('internal/deps/undici')), [], "Node's bundled undici is loaded")
  })
})
