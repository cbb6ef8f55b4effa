import { readFileSync, statSync } from 'node:fs'
import { userInfo } from 'node:os'
import { OperatorError } from '../errors.ts'

/**
 * Who the sandbox's processes are. `inside` is the uid and gid they see (--uid, 65534 by default);
 * `host` is what the kernel checks outside: the same numbers as root, and in a user namespace the
 * first subordinate uid and gid of keyvalet's user (/etc/subuid, /etc/subgid, mapped by the
 * setuid helpers newuidmap and newgidmap), never keyvalet's own uid. A process of keyvalet's uid
 * could read keyvalet's environment and memory (/proc/PID/environ, ptrace) and its files.
 */
export interface SandboxIdentity {
  readonly inside: { readonly uid: number; readonly gid: number }
  readonly host: { readonly uid: number; readonly gid: number }
}

const SUBORDINATE_HINT = (user: string): string =>
  `give ${user} subordinate ids (sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${user}) and install newuidmap and newgidmap (apt-get install uidmap), or run keyvalet run as root`

/** The start of the first range of `user` (named by name or uid) in a subuid(5) or subgid(5) file. */
export function firstSubordinate(text: string, user: { name: string; id: number }): number | undefined {
  for (const line of text.split('\n')) {
    const [owner, start, count, ...rest] = line.trim().split(':')
    if (rest.length > 0 || !/^\d+$/.test(start ?? '') || !/^\d+$/.test(count ?? '') || Number(count) < 1) continue
    if (owner === user.name || owner === String(user.id)) return Number(start)
  }
  return undefined
}

/** As root, the sandbox's ids are real ids of the host; without root, subordinate ones. */
export function sandboxIdentity(inside: { uid: number; gid: number }, asRoot: boolean): SandboxIdentity {
  return { inside, host: asRoot ? inside : subordinateIds() }
}

/** In a user namespace: the subordinate ids, or a clear refusal when keyvalet's user has none. */
export function subordinateIds(files = { uid: '/etc/subuid', gid: '/etc/subgid' }): { uid: number; gid: number } {
  const uid = process.getuid?.() ?? -1
  let name = String(uid)
  try {
    name = userInfo().username
  } catch {
    // no passwd entry: subordinate ranges can still name the uid
  }
  const read = (file: string): string => {
    try {
      return readFileSync(file, 'utf8')
    } catch {
      return ''
    }
  }
  const subUid = firstSubordinate(read(files.uid), { name, id: uid })
  const subGid = firstSubordinate(read(files.gid), { name, id: uid })
  if (subUid === undefined || subGid === undefined) {
    throw new OperatorError(`keyvalet run without root runs the sandbox as a subordinate uid of ${name}, and ${subUid === undefined ? files.uid : files.gid} gives ${name} none`, SUBORDINATE_HINT(name))
  }
  return { uid: subUid, gid: subGid }
}

/**
 * Refuses a sandbox whose host uid is keyvalet's: the uid this process runs as, or the owner of
 * keyvalet's data folder or master key file (the uid of a keyvalet started separately, --attach).
 */
export function assertAnotherUid(identity: SandboxIdentity, keyvaletPaths: readonly string[]): void {
  const owners = new Map<number, string>([[process.getuid?.() ?? -1, 'the uid keyvalet runs as']])
  for (const path of keyvaletPaths) {
    try {
      owners.set(statSync(path).uid, `the owner of ${path}`)
    } catch {
      // not created yet: it will be this process's
    }
  }
  const owner = owners.get(identity.host.uid)
  if (owner !== undefined) {
    throw new OperatorError(
      `the sandbox would run as uid ${identity.host.uid}, ${owner}: a process of keyvalet's uid can read keyvalet's memory, environment and files`,
      identity.host === identity.inside ? 'pass --uid with a uid of no other user (the default 65534 is nobody)' : 'give keyvalet\'s user a subordinate range of its own in /etc/subuid',
    )
  }
}
