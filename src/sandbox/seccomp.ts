import { OperatorError } from '../errors.ts'

/**
 * The sandbox's system call filter: a classic BPF program for seccomp (struct sock_filter[], as
 * bwrap's --seccomp FD takes it), loaded just before the sandbox's first process starts; every
 * process inside inherits it and none can remove it. A deny list: the kernel's own permission
 * checks still apply to everything allowed. The decision, in order:
 *
 *   1. the calling convention (seccomp_data.arch) is not this machine's native one (i386 through
 *      int 0x80 on x86_64, arm32 on aarch64: other system call numbers) → kill the process;
 *   2. x86_64: an x32 system call number (bit 30) → kill the process;
 *   3. a number above the highest this table knows → ENOSYS: a newer kernel's call, which the
 *      filter cannot judge; programs treat it as missing and fall back;
 *   4. clone3 → ENOSYS: its flags are in memory, which seccomp cannot read; libc falls back to clone;
 *   5. REFUSED below → EPERM;
 *   6. socket: a family other than AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK with NETLINK_ROUTE
 *      (AF_VSOCK, AF_PACKET, AF_BLUETOOTH…: ways out that bypass the network namespace, or kernel
 *      surface) → EPERM; clone and unshare with any CLONE_NEW* flag (a user namespace would give
 *      back capabilities) → EPERM; ioctl TIOCSTI or TIOCLINUX (typing into the terminal that the
 *      sandbox shares with the operator) → EPERM;
 *   7. anything else → allowed.
 *
 * Arguments are compared on their low 32 bits only, which is all the kernel reads of them
 * (socket's family and protocol are int, ioctl's request unsigned int, clone's flags are cut to
 * 32 bits, unshare refuses high bits): a value with high bits set cannot slip past a comparison.
 */
export const REFUSED = [
  // Namespaces and the filesystem's shape: the sandbox's mounts are set; nothing to join.
  'setns', 'mount', 'umount2', 'pivot_root', 'chroot', 'fsopen', 'fsconfig', 'fsmount', 'fspick', 'move_mount', 'open_tree', 'open_tree_attr', 'mount_setattr',
  // Kernel keyrings, shared beyond the sandbox.
  'add_key', 'request_key', 'keyctl',
  // Kernel attack surface with no use to an agent; io_uring also runs socket operations that never pass through socket().
  'bpf', 'perf_event_open', 'userfaultfd', 'io_uring_setup', 'io_uring_enter', 'io_uring_register',
  // The host's kernel log; file handles that open files by inode, around the mount table.
  'syslog', 'name_to_handle_at', 'open_by_handle_at',
  // Administration of the machine.
  'init_module', 'finit_module', 'delete_module', 'kexec_load', 'kexec_file_load', 'reboot', 'swapon', 'swapoff', 'acct',
] as const

type Refused = (typeof REFUSED)[number]
type Judged = Refused | 'socket' | 'clone' | 'clone3' | 'unshare' | 'ioctl'

export interface SyscallTable {
  /** AUDIT_ARCH_* of the native calling convention. */
  readonly auditArch: number
  /** x86_64: numbers with bit 30 are the x32 ABI's. */
  readonly x32Bit: boolean
  /** The highest system call number the table was written against (Linux 6.17: file_setattr). */
  readonly highest: number
  readonly numbers: Readonly<Record<Judged, number>>
}

/** From the kernel's syscall_64.tbl (x86_64) and the generic table (aarch64). */
export const SYSCALL_TABLES: Readonly<Partial<Record<NodeJS.Architecture, SyscallTable>>> = {
  x64: {
    auditArch: 0xc000003e, // EM_X86_64 | 64-bit | little-endian
    x32Bit: true,
    highest: 469,
    numbers: {
      socket: 41, clone: 56, clone3: 435, unshare: 272, ioctl: 16,
      setns: 308, mount: 165, umount2: 166, pivot_root: 155, chroot: 161, fsopen: 430, fsconfig: 431, fsmount: 432, fspick: 433, move_mount: 429, open_tree: 428, open_tree_attr: 467, mount_setattr: 442,
      add_key: 248, request_key: 249, keyctl: 250,
      bpf: 321, perf_event_open: 298, userfaultfd: 323, io_uring_setup: 425, io_uring_enter: 426, io_uring_register: 427,
      syslog: 103, name_to_handle_at: 303, open_by_handle_at: 304,
      init_module: 175, finit_module: 313, delete_module: 176, kexec_load: 246, kexec_file_load: 320, reboot: 169, swapon: 167, swapoff: 168, acct: 163,
    },
  },
  arm64: {
    auditArch: 0xc00000b7, // EM_AARCH64 | 64-bit | little-endian
    x32Bit: false,
    highest: 469,
    numbers: {
      socket: 198, clone: 220, clone3: 435, unshare: 97, ioctl: 29,
      setns: 268, mount: 40, umount2: 39, pivot_root: 41, chroot: 51, fsopen: 430, fsconfig: 431, fsmount: 432, fspick: 433, move_mount: 429, open_tree: 428, open_tree_attr: 467, mount_setattr: 442,
      add_key: 217, request_key: 218, keyctl: 219,
      bpf: 280, perf_event_open: 241, userfaultfd: 282, io_uring_setup: 425, io_uring_enter: 426, io_uring_register: 427,
      syslog: 116, name_to_handle_at: 264, open_by_handle_at: 265,
      init_module: 105, finit_module: 273, delete_module: 106, kexec_load: 104, kexec_file_load: 294, reboot: 142, swapon: 224, swapoff: 225, acct: 89,
    },
  },
}

export const SECCOMP_RET = { killProcess: 0x80000000, errno: 0x00050000, allow: 0x7fff0000 } as const
export const ERRNO = { EPERM: 1, ENOSYS: 38 } as const
export const SOCKET_FAMILIES_ALLOWED = { AF_UNIX: 1, AF_INET: 2, AF_INET6: 10 } as const
const AF_NETLINK = 16
const NETLINK_ROUTE = 0
/** CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET; unshare also NEWTIME (0x80, the exit signal's bits in clone). */
const CLONE_NEW_ANY = 0x7e020000
const CLONE_NEWTIME = 0x80
export const TERMINAL_IOCTLS_REFUSED = { TIOCSTI: 0x5412, TIOCLINUX: 0x541c } as const
const X32_BIT = 0x40000000

// struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; }, little-endian.
const NR = 0
const ARCH = 4
const argLow = (i: number): number => 16 + 8 * i

// Classic BPF opcodes (linux/bpf_common.h).
const LD_W_ABS = 0x20
const JEQ_K = 0x15
const JGT_K = 0x25
const JSET_K = 0x45
const RET_K = 0x06

/** The table of the machine keyvalet runs on; an unsupported one is refused rather than run unfiltered. */
export function syscallTable(arch: NodeJS.Architecture = process.arch): SyscallTable {
  const table = SYSCALL_TABLES[arch]
  if (table === undefined) throw new OperatorError(`keyvalet run has no system call filter for ${arch}`, 'run the sandbox on x86_64 or aarch64 Linux')
  return table
}

/** The filter as bytes: 8 per instruction (u16 code, u8 jt, u8 jf, u32 k), little-endian. */
export function seccompProgram(table: SyscallTable = syscallTable()): Buffer {
  const n = table.numbers
  const p = new Assembler()
  p.ld(ARCH)
  p.jump(JEQ_K, table.auditArch, null, 'kill')
  p.ld(NR)
  if (table.x32Bit) p.jump(JSET_K, X32_BIT, 'kill', null)
  p.jump(JGT_K, table.highest, 'enosys', null)
  p.jump(JEQ_K, n.clone3, 'enosys', null)
  for (const name of REFUSED) p.jump(JEQ_K, n[name], 'eperm', null)
  p.jump(JEQ_K, n.socket, 'socket', null)
  p.jump(JEQ_K, n.clone, 'clone', null)
  p.jump(JEQ_K, n.unshare, 'unshare', null)
  p.jump(JEQ_K, n.ioctl, 'ioctl', null)
  p.ret(SECCOMP_RET.allow)

  p.label('socket')
  p.ld(argLow(0))
  for (const family of Object.values(SOCKET_FAMILIES_ALLOWED)) p.jump(JEQ_K, family, 'allow', null)
  p.jump(JEQ_K, AF_NETLINK, null, 'eperm')
  p.ld(argLow(2))
  p.jump(JEQ_K, NETLINK_ROUTE, 'allow', 'eperm')

  p.label('clone')
  p.ld(argLow(0))
  p.jump(JSET_K, CLONE_NEW_ANY, 'eperm', 'allow')

  p.label('unshare')
  p.ld(argLow(0))
  p.jump(JSET_K, CLONE_NEW_ANY | CLONE_NEWTIME, 'eperm', 'allow')

  p.label('ioctl')
  p.ld(argLow(1))
  for (const request of Object.values(TERMINAL_IOCTLS_REFUSED)) p.jump(JEQ_K, request, 'eperm', null)
  p.ret(SECCOMP_RET.allow)

  p.label('allow')
  p.ret(SECCOMP_RET.allow)
  p.label('eperm')
  p.ret(SECCOMP_RET.errno | ERRNO.EPERM)
  p.label('enosys')
  p.ret(SECCOMP_RET.errno | ERRNO.ENOSYS)
  p.label('kill')
  p.ret(SECCOMP_RET.killProcess)
  return p.assemble()
}

interface Instruction { code: number; k: number; jt: string | null; jf: string | null }

/** Forward jumps to labels; null falls through to the next instruction. */
class Assembler {
  private readonly code: Instruction[] = []
  private readonly labels = new Map<string, number>()

  ld(offset: number): void {
    this.code.push({ code: LD_W_ABS, k: offset, jt: null, jf: null })
  }

  jump(code: number, k: number, jt: string | null, jf: string | null): void {
    this.code.push({ code, k, jt, jf })
  }

  ret(k: number): void {
    this.code.push({ code: RET_K, k, jt: null, jf: null })
  }

  label(name: string): void {
    this.labels.set(name, this.code.length)
  }

  assemble(): Buffer {
    const out = Buffer.alloc(this.code.length * 8)
    this.code.forEach((ins, i) => {
      out.writeUInt16LE(ins.code, i * 8)
      out.writeUInt8(this.offset(ins.jt, i), i * 8 + 2)
      out.writeUInt8(this.offset(ins.jf, i), i * 8 + 3)
      out.writeUInt32LE(ins.k >>> 0, i * 8 + 4)
    })
    return out
  }

  private offset(label: string | null, from: number): number {
    if (label === null) return 0
    const to = this.labels.get(label)
    // Classic BPF jumps only forward, by at most 255 instructions.
    if (to === undefined || to <= from || to - from - 1 > 255) throw new Error(`seccomp: no forward jump from ${from} to ${label}`)
    return to - from - 1
  }
}
