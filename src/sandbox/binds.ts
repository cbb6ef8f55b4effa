import { closeSync, fstatSync, openSync, readlinkSync } from 'node:fs'
import { OperatorError } from '../errors.ts'

/** A host file or folder bound into the sandbox at its own path. */
export interface Bind {
  /** Where it is on the host, read back from the open descriptor (every symlink resolved). */
  readonly path: string
  readonly writable: boolean
  /** Open on it: bubblewrap binds what was opened (--bind-fd), not what the path names later. */
  readonly fd: number
}

/**
 * Opens a host path to bind into the sandbox. Every check is made on what was opened, never on
 * the name again: a folder that the sandbox's uid can write could otherwise be swapped for a
 * symlink between the check and the mount. `what` names it in messages (--workdir DIR).
 */
export function openBind(path: string, writable: boolean, what: string, opts: { folder?: boolean } = {}): Bind {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch (err) {
    throw new OperatorError(`${what} cannot be opened (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  try {
    if (opts.folder === true && !fstatSync(fd).isDirectory()) throw new OperatorError(`${what} is not a folder`)
    return { path: readlinkSync(`/proc/self/fd/${fd}`), writable, fd }
  } catch (err) {
    closeSync(fd)
    throw err
  }
}

export function closeBinds(binds: readonly Bind[]): void {
  for (const b of binds) closeSync(b.fd)
}
