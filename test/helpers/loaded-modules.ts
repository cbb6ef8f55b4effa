/**
 * Preload (`--import`) that records every module a process loads (node:module registerHooks sees
 * import and require) and writes their URLs, one a line, to $LOADED_MODULES_FILE when it exits,
 * followed by Node's own list of the builtins it loaded (process.moduleLoadList, e.g.
 * `NativeModule internal/deps/undici/undici`), which builtins load without passing the hooks.
 */
import { writeFileSync } from 'node:fs'
import { registerHooks } from 'node:module'
import { isMainThread } from 'node:worker_threads'

const file = process.env.LOADED_MODULES_FILE
if (file !== undefined && file !== '' && isMainThread) {
  const urls: string[] = []
  registerHooks({
    load(url, context, nextLoad) {
      urls.push(url)
      return nextLoad(url, context)
    },
  })
  process.once('exit', () => writeFileSync(file, [...urls, ...(process as NodeJS.Process & { moduleLoadList: readonly string[] }).moduleLoadList].join('\n')))
}
