import { strict as assert } from 'node:assert'
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const REPO = fileURLToPath(new URL('../..', import.meta.url))
const ENTRY = fileURLToPath(new URL('../../src/cli/entry.mjs', import.meta.url))
// Loaded before the entry, in plain JavaScript: says at exit whether Node's type stripper was loaded.
const PROBE = "data:text/javascript,process.on('exit',()=>process.stderr.write('stripper loaded: '+process.moduleLoadList.some((m)=>m.includes('amaro'))+'\\n'))"

function check(env: NodeJS.ProcessEnv = {}): { status: number | null; stripper: string | undefined; output: string } {
  const run = spawnSync(process.execPath, ['--import', PROBE, ENTRY, 'check', '--config', 'examples/keyvalet.yaml'], { cwd: REPO, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, encoding: 'utf8', timeout: 60_000 })
  return { status: run.status, stripper: /stripper loaded: (\w+)/.exec(run.stderr)?.[1], output: run.stdout + run.stderr }
}

test('from the second run on, the CLI comes from the compile cache in the install tree and never loads the type stripper', () => {
  const first = check()
  assert.equal(first.status, 0, first.output)
  assert.ok(existsSync(`${REPO}/.compile-cache`) && readdirSync(`${REPO}/.compile-cache`).length > 0, 'the cache is in the install tree')
  const second = check()
  assert.equal(second.status, 0, second.output)
  assert.equal(second.stripper, 'false', second.output)
})

test('with the compile cache turned off, the CLI works as before (types stripped at load)', () => {
  const off = check({ NODE_DISABLE_COMPILE_CACHE: '1' })
  assert.equal(off.status, 0, off.output)
  assert.equal(off.stripper, 'true', off.output)
})
