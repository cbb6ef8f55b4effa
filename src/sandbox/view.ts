import { lstatSync, mkdirSync, readlinkSync, writeFileSync, type Stats } from 'node:fs'
import { join, sep } from 'node:path'

/**
 * What the sandbox sees of the filesystem, as bubblewrap arguments: a root of its own (a tmpfs,
 * read-only once built) holding only
 *   - the system folders a program needs, read-only at their own path (or the symlink they are
 *     on a merged-/usr system): SYSTEM;
 *   - an /etc of a fixed allow list: from the host, ETC_FROM_HOST (none holds host configuration
 *     that could carry a secret: no gitconfig, npmrc, pip.conf, environment, profile or shadow);
 *     written by keyvalet, GENERATED (users root and the sandbox's only, names from files only,
 *     no resolver);
 *   - its own /proc (of its PID namespace), a minimal /dev (null, zero, full, random, urandom,
 *     tty, its own pts, a private /dev/shm), a private /tmp, /var/tmp and /home (where the relay
 *     creates HOME);
 *   - /run/keyvalet: keyvalet's sockets, its CA, the relay and the Node binary that runs it;
 *   - the working folder read-write and what --bind and --ro-bind name, at their own path;
 *   - over anything bound, `masks` (keyvalet's data folder, its key file) hidden behind an empty
 *     read-only tmpfs or /dev/null.
 * Mounts are in order of depth, so that a parent never covers its child.
 */
export interface ViewSpec {
  /** The working folder first, then --bind and --ro-bind: descriptors open in bubblewrap (--bind-fd). */
  readonly binds: readonly PassedBind[]
  readonly masks: readonly string[]
  /** keyvalet's Unix sockets by name (forward, gateway): bound at /run/keyvalet/NAME.sock. */
  readonly sockets: Readonly<Record<string, string>>
  readonly caFile: string
  readonly node: string
  readonly relay: string
  /** A private host folder for the generated /etc files. */
  readonly etcDir: string
  readonly user: { readonly uid: number; readonly gid: number; readonly home: string }
  readonly hostname: string
}

export interface PassedBind {
  readonly path: string
  readonly writable: boolean
  /** bubblewrap's descriptor of it. */
  readonly fd: number
}

export const SYSTEM = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'] as const
export const ETC_FROM_HOST = [
  'ld.so.cache', 'localtime', 'timezone', 'services', 'protocols', 'mime.types', 'os-release', 'alternatives',
  'ssl/certs', 'ssl/openssl.cnf', 'pki/tls/certs', 'pki/ca-trust/extracted',
] as const
export const GENERATED = ['passwd', 'group', 'nsswitch.conf', 'hosts', 'hostname', 'resolv.conf'] as const

type Mount = { readonly at: string; readonly args: readonly string[] }

/** The bubblewrap arguments of the system folders alone (what the probe needs to run `true`). */
export function systemArgs(): string[] {
  return SYSTEM.flatMap((path) => fromHost(path, path)?.args ?? [])
}

/** Writes the generated /etc files into spec.etcDir and returns every filesystem argument. */
export function viewArgs(spec: ViewSpec): string[] {
  writeEtc(spec)
  const mounts: Mount[] = [
    ...SYSTEM.flatMap((path) => fromHost(path, path) ?? []),
    ...ETC_FROM_HOST.flatMap((name) => fromHost(`/etc/${name}`, `/etc/${name}`) ?? []),
    ...GENERATED.map((name) => ({ at: `/etc/${name}`, args: ['--ro-bind', join(spec.etcDir, name), `/etc/${name}`] })),
    { at: '/etc/mtab', args: ['--symlink', '../proc/self/mounts', '/etc/mtab'] },
    { at: '/proc', args: ['--proc', '/proc'] },
    { at: '/dev', args: ['--dev', '/dev'] },
    { at: '/dev/shm', args: ['--perms', '1777', '--tmpfs', '/dev/shm'] },
    { at: '/tmp', args: ['--perms', '1777', '--tmpfs', '/tmp'] },
    { at: '/var/tmp', args: ['--perms', '1777', '--tmpfs', '/var/tmp'] },
    { at: '/home', args: ['--perms', '1777', '--tmpfs', '/home'] },
    ...Object.entries(spec.sockets).map(([name, path]) => ({ at: `/run/keyvalet/${name}.sock`, args: ['--ro-bind', path, `/run/keyvalet/${name}.sock`] })),
    { at: '/run/keyvalet/ca.pem', args: ['--ro-bind', spec.caFile, '/run/keyvalet/ca.pem'] },
    { at: '/run/keyvalet/node', args: ['--ro-bind', spec.node, '/run/keyvalet/node'] },
    { at: '/run/keyvalet/relay.ts', args: ['--ro-bind', spec.relay, '/run/keyvalet/relay.ts'] },
    ...spec.binds.map((b) => ({ at: b.path, args: [b.writable ? '--bind-fd' : '--ro-bind-fd', String(b.fd), b.path] })),
  ]
  const bound = [...SYSTEM, ...ETC_FROM_HOST.map((n) => `/etc/${n}`), ...spec.binds.map((b) => b.path)]
  for (const mask of spec.masks) {
    if (!bound.some((b) => within(mask, b))) continue
    const stat = lstatOrUndefined(mask)
    if (stat === undefined) continue
    mounts.push(stat.isDirectory()
      ? { at: mask, args: ['--perms', '0000', '--size', '4096', '--tmpfs', mask, '--remount-ro', mask] }
      : { at: mask, args: ['--ro-bind', '/dev/null', mask] })
  }
  // Every folder on the way to a mount point, made first (bubblewrap 0.8 makes missing parents of a bind 0700).
  const points = new Set(mounts.map((m) => m.at))
  const ancestors = new Set(mounts.flatMap((m) => parents(m.at)).filter((p) => !points.has(p)))
  mounts.push(...[...ancestors].map((at) => ({ at, args: ['--dir', at] })))
  const ordered = mounts.map((m, i) => ({ ...m, i, folder: m.args[0] === '--dir' ? 0 : 1 })).sort((a, b) => depth(a.at) - depth(b.at) || a.folder - b.folder || a.i - b.i)
  return [...ordered.flatMap((m) => m.args), '--remount-ro', '/']
}

export function within(path: string, parent: string): boolean {
  return path === parent || path.startsWith(parent.endsWith(sep) ? parent : parent + sep)
}

/** A host path at the same place inside: its symlink, or a read-only bind; nothing if it is missing. */
function fromHost(path: string, at: string): Mount | undefined {
  const stat = lstatOrUndefined(path)
  if (stat === undefined) return undefined
  return stat.isSymbolicLink() ? { at, args: ['--symlink', readlinkSync(path), at] } : { at, args: ['--ro-bind', path, at] }
}

function writeEtc(spec: ViewSpec): void {
  mkdirSync(spec.etcDir, { recursive: true, mode: 0o755 })
  const { uid, gid, home } = spec.user
  // 65534 is also what a user namespace shows for every host id it does not map: call it nobody.
  const userName = uid === 65534 ? 'nobody' : 'sandbox'
  const groupName = gid === 65534 ? 'nogroup' : 'sandbox'
  const files: Record<(typeof GENERATED)[number], string> = {
    passwd: `root:x:0:0:root:/root:/usr/sbin/nologin\n${userName}:x:${uid}:${gid}:keyvalet sandbox:${home}:/bin/sh\n`,
    group: `root:x:0:\n${groupName}:x:${gid}:\n`,
    'nsswitch.conf': 'passwd: files\ngroup: files\nshadow: files\nhosts: files\nnetworks: files\nprotocols: files\nservices: files\n',
    hosts: `127.0.0.1 localhost ${spec.hostname}\n::1 localhost ip6-localhost ip6-loopback\n`,
    hostname: `${spec.hostname}\n`,
    'resolv.conf': '# keyvalet run: there is no resolver in the sandbox; keyvalet resolves the names it allows.\n',
  }
  for (const name of GENERATED) writeFileSync(join(spec.etcDir, name), files[name], { mode: 0o644 })
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path)
  } catch {
    return undefined
  }
}

/** /a/b/c → /a, /a/b */
function parents(path: string): string[] {
  const parts = path.split('/').filter(Boolean)
  return parts.slice(0, -1).map((_, i) => `/${parts.slice(0, i + 1).join('/')}`)
}

function depth(path: string): number {
  return path.split('/').filter(Boolean).length
}
