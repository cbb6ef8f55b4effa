/**
 * The layering of src/: no import cycle between files, and none between top-level folders (a file
 * directly in src/ counts as a folder of its own). Every import counts: static `import`, `export
 * ... from`, `import type` and `import()`. Tests are left out: they may import from anywhere.
 */

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'

const SRC = resolve(import.meta.dirname, '../src')

/** Relative module specifiers of a source text: `from '…'`, bare `import '…'` and `import('…')`. */
export function importsOf(text: string): string[] {
  const found: string[] = []
  const patterns = [/\b(?:import|export)\b[^;'"`]*?\bfrom\s*['"](\.[^'"]+)['"]/g, /\bimport\s*['"](\.[^'"]+)['"]/g, /\bimport\s*\(\s*['"](\.[^'"]+)['"]\s*\)/g]
  for (const pattern of patterns) for (const m of text.matchAll(pattern)) found.push(m[1] as string)
  return found
}

/** Each cycle of `graph` (its strongly connected components with more than one node, or a self-edge), as sorted names. */
export function cycles(graph: ReadonlyMap<string, ReadonlySet<string>>): string[][] {
  // Tarjan's algorithm, iterative so a deep graph cannot overflow the stack.
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const onStack = new Set<string>()
  const stack: string[] = []
  const out: string[][] = []
  let next = 0
  for (const root of graph.keys()) {
    if (index.has(root)) continue
    const work: [string, Iterator<string>][] = [[root, (graph.get(root) ?? new Set()).values()]]
    index.set(root, next); low.set(root, next++); stack.push(root); onStack.add(root)
    while (work.length > 0) {
      const [node, edges] = work[work.length - 1] as [string, Iterator<string>]
      const edge = edges.next()
      if (!edge.done) {
        const to = edge.value
        if (!index.has(to)) {
          index.set(to, next); low.set(to, next++); stack.push(to); onStack.add(to)
          work.push([to, (graph.get(to) ?? new Set()).values()])
        } else if (onStack.has(to)) {
          low.set(node, Math.min(low.get(node) as number, index.get(to) as number))
        }
        continue
      }
      work.pop()
      const parent = work[work.length - 1]
      if (parent !== undefined) low.set(parent[0], Math.min(low.get(parent[0]) as number, low.get(node) as number))
      if (low.get(node) !== index.get(node)) continue
      const component: string[] = []
      let member: string
      do {
        member = stack.pop() as string
        onStack.delete(member)
        component.push(member)
      } while (member !== node)
      if (component.length > 1 || graph.get(node)?.has(node) === true) out.push(component.sort())
    }
  }
  return out
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name)
    if (e.isDirectory()) return sourceFiles(path)
    return /\.[cm]?[jt]s$/.test(e.name) && !/\.test\.ts$/.test(e.name) ? [path] : []
  })
}

function importGraphs(): { files: Map<string, Set<string>>; folders: Map<string, Set<string>> } {
  const files = new Map<string, Set<string>>()
  const folders = new Map<string, Set<string>>()
  const folderOf = (file: string): string => relative(SRC, file).split('/')[0] as string
  for (const file of sourceFiles(SRC)) {
    const from = relative(SRC, file)
    const edges = files.get(from) ?? new Set<string>()
    files.set(from, edges)
    for (const specifier of importsOf(readFileSync(file, 'utf8'))) {
      const target = resolve(dirname(file), specifier)
      if (relative(SRC, target).startsWith('..')) continue
      edges.add(relative(SRC, target))
      const folder = folderOf(file)
      const targetFolder = folderOf(target)
      if (folder === targetFolder) continue
      const folderEdges = folders.get(folder) ?? new Set<string>()
      folders.set(folder, folderEdges.add(targetFolder))
    }
  }
  return { files, folders }
}

test('the import walk sees every kind of import', () => {
  const text = "import a from './a.ts'\nimport type { B } from '../b.ts'\nexport { c } from './c.ts'\nimport {\n  d,\n  e,\n} from './d.ts'\nimport './side.ts'\nconst f = await import('./f.ts')\nimport { x } from 'node:fs'"
  assert.deepEqual(importsOf(text).sort(), ['../b.ts', './a.ts', './c.ts', './d.ts', './f.ts', './side.ts'])
  assert.deepEqual(cycles(new Map([['a', new Set(['b'])], ['b', new Set(['c'])], ['c', new Set(['a'])], ['d', new Set(['a'])]])), [['a', 'b', 'c']])
  assert.deepEqual(cycles(new Map([['a', new Set(['b'])], ['b', new Set<string>()]])), [])
})

test('no import cycle between files of src/', () => {
  const { files } = importGraphs()
  assert.ok(files.size > 100, 'the walk found the source files')
  assert.deepEqual(cycles(files).map((c) => c.join(' <-> ')), [])
})

test('no import cycle between folders of src/', () => {
  const { folders } = importGraphs()
  assert.ok(folders.has('proxy') && folders.has('config'), 'the walk found the folders')
  assert.deepEqual(cycles(folders).map((c) => c.join(' <-> ')), [])
})
