/**
 * A function literal assigned straight to a property (`obj.f = () => …`, `obj[k] = function …`)
 * is allocated by V8 in the old generation (its parser marks such literals to be pretenured, for
 * methods set up once). On a per-request object that is the wrong guess: the old closure keeps
 * its context, and through it the request's objects, alive through every young collection until
 * the next full one, which then pauses for it (undici's own `request` did this: ~3 KiB per request
 * promoted, src/proxy/upstream-exchange.ts). src/ makes the closure first (`const f = …; obj.f =
 * f`), or uses a class field or an object literal, which V8 allocates young.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { promisify } from 'node:util'

const SRC = resolve(import.meta.dirname, '../src')
const PROBE = resolve(import.meta.dirname, 'helpers/pretenured-closure-probe.ts')

/** `<member or element> = <function literal>`: an arrow (with or without parentheses, async or not) or a function expression. */
const LITERAL_TO_PROPERTY = /(?:\.[\p{L}_$#][\p{L}\p{N}_$]*|\])\s*=\s*(?:async\s+)?(?:function\b|\([^()]*\)\s*(?::[^=;{]+)?=>|[\p{L}_$][\p{L}\p{N}_$]*\s*=>)/u

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name)
    if (e.isDirectory()) return sources(path)
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [path] : []
  })
}

test('V8 still keeps what a closure assigned straight to a property reaches alive through young collections', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', '--max-semi-space-size=16', PROBE], { timeout: 60_000 })
  const grown = JSON.parse(stdout) as { literalToProperty: number; localThenProperty: number }
  // ~2,000 × 2 KiB promoted against next to nothing. Should a V8 release stop doing this, the rule below may go.
  assert.ok(grown.literalToProperty > 2 * 1024 * 1024, JSON.stringify(grown))
  assert.ok(grown.localThenProperty < grown.literalToProperty / 4, JSON.stringify(grown))
})

test('no file in src/ assigns a function literal straight to a property', () => {
  const found: string[] = []
  for (const file of sources(SRC)) {
    readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
      if (!line.trimStart().startsWith('//') && !line.trimStart().startsWith('*') && LITERAL_TO_PROPERTY.test(line)) found.push(`${relative(SRC, file)}:${i + 1}: ${line.trim()}`)
    })
  }
  assert.deepEqual(found, [])
})

test('the pattern finds the forms it is meant to, and not the ones src/ uses instead', () => {
  for (const bad of ['this.abort = (reason) => controller.abort(reason)', 'h.f = async () => 1', 'guarded[name] = async (...args: unknown[]) => {', 'obj.x = function () {', 'this.#x = (a: number): void => {', 'o.cb = err => {']) assert.ok(LITERAL_TO_PROPERTY.test(bad), bad)
  for (const good of ['const f = () => 1', 'h.f = f', 'readonly #onAbort = (): void => {', 'x = { g: () => 1 }', 'if (a.b === (c) => 1) {}', 'bodyError = (err) => upstreamError(err)']) assert.ok(!LITERAL_TO_PROPERTY.test(good), good)
})
