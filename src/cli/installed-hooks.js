/**
 * Loaded with `node --import` by bin/keyvalet when keyvalet is installed under a node_modules
 * folder (npm install -g, npx, a project's dependency). Node strips TypeScript types itself, but
 * refuses to for files under node_modules (ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING); this
 * hook applies the same transform (node:module stripTypeScriptTypes) to keyvalet's own .ts files
 * only. Plain JavaScript: it runs before any type stripping. Worker threads inherit the --import.
 */
import { readFileSync } from 'node:fs'
import { registerHooks, stripTypeScriptTypes } from 'node:module'
import { fileURLToPath } from 'node:url'

const packageRoot = new URL('../../', import.meta.url).href

registerHooks({
  load(url, context, nextLoad) {
    if (!url.startsWith(packageRoot) || !url.endsWith('.ts')) return nextLoad(url, context)
    return { format: 'module', source: stripTypeScriptTypes(readFileSync(fileURLToPath(url), 'utf8')), shortCircuit: true }
  },
})
