import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'

/** How long the file must be quiet before a change is acted on: an editor's save is several events. */
export const WATCH_DEBOUNCE_MS = 300

/**
 * Calls `changed` once the configuration file has changed and then stayed quiet for `debounceMs`.
 * Watches the file's folder, not the file: editors and deploy tools replace a file by renaming
 * another over it, which a watch on the file itself stops seeing. Returns the stop function.
 */
export function watchFile(file: string, changed: () => void, debounceMs = WATCH_DEBOUNCE_MS): () => void {
  const name = basename(file)
  let timer: NodeJS.Timeout | undefined
  const watcher: FSWatcher = watch(dirname(file), { persistent: false }, (_event, changedName) => {
    if (changedName !== null && changedName !== name) return
    clearTimeout(timer)
    timer = setTimeout(changed, debounceMs)
  })
  watcher.on('error', () => watcher.close())
  return () => {
    clearTimeout(timer)
    watcher.close()
  }
}
