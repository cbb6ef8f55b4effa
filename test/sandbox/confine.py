"""Runs inside a `keyvalet run` sandbox by test/sandbox/run.test.ts: what the system call filter
refuses, what the filesystem shows, and that ordinary tools still work. Prints one JSON object.
System calls are made through glibc's wrappers where it has one (their numbers are glibc's, not
keyvalet's); the others take the numbers passed in argv[1]. Each call's arguments are chosen so
that the kernel itself would answer something else than EPERM (noted where it cannot)."""
import ctypes, errno, json, os, socket, stat, subprocess, sys

args = json.loads(sys.argv[1])
nr = args["numbers"]
libc = ctypes.CDLL(None, use_errno=True)
out = {}

def call(fn, *a):
    """The errno of a failed call, or "ok"."""
    ctypes.set_errno(0)
    r = fn(*a)
    return "ok" if r != -1 else errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno())

def syscall(number, *a):
    return call(libc.syscall, ctypes.c_long(number), *[ctypes.c_long(x) for x in a])

def wrapper(name, *a):
    return call(getattr(libc, name), *a) if hasattr(libc, name) else "no glibc wrapper"

out["fds"] = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))  # 0, 1, 2 and the listing's own
status = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
out["seccomp"] = status.get("Seccomp", "").strip()

def sock(family, kind=socket.SOCK_STREAM, proto=0):
    try:
        socket.socket(family, kind, proto).close()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, e.errno)
out["sockets"] = {
    "AF_VSOCK": sock(socket.AF_VSOCK),
    "AF_NETLINK/KOBJECT_UEVENT": sock(socket.AF_NETLINK, socket.SOCK_DGRAM, 15),  # the kernel allows it
    "AF_ALG": sock(38, socket.SOCK_SEQPACKET),  # the kernel allows it
    "AF_PACKET": sock(17, socket.SOCK_RAW),  # the kernel needs CAP_NET_RAW: EPERM either way
    "AF_UNIX": sock(socket.AF_UNIX), "AF_INET": sock(socket.AF_INET), "AF_INET6": sock(socket.AF_INET6),
    "AF_NETLINK/ROUTE": sock(socket.AF_NETLINK, socket.SOCK_DGRAM, 0),
}
out["vsock_python"] = subprocess.run([sys.executable, "-c", "import socket; socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)"], capture_output=True, text=True).stderr.strip().splitlines()[-1:]
unshare = subprocess.run(["unshare", "-U", "true"], capture_output=True, text=True)
out["unshare_U"] = {"code": unshare.returncode, "stderr": unshare.stderr.strip()}

def clone_in_child(flags):
    """clone() with `flags` in a throw-away process; a child it makes exits at once."""
    code = "import ctypes, os, sys\nlibc = ctypes.CDLL(None, use_errno=True)\nr = libc.syscall(ctypes.c_long(%d), ctypes.c_long(%d), 0, 0, 0, 0)\nif r == 0: os._exit(0)\nprint('ok' if r > 0 else ctypes.get_errno())" % (nr["clone"], flags)
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
    return got if got == "ok" else errno.errorcode.get(int(got), got)

CLONE_NEWUSER, CLONE_NEWNET, SIGCHLD = 0x10000000, 0x40000000, 17
out["calls"] = {
    "unshare(CLONE_NEWUSER)": wrapper("unshare", CLONE_NEWUSER),
    "clone(CLONE_NEWUSER)": clone_in_child(CLONE_NEWUSER | SIGCHLD),
    "clone3": syscall(nr["clone3"], 0, 0),  # the kernel: EFAULT or EINVAL
    "setns": wrapper("setns", -1, 0),  # the kernel: EBADF
    "open_tree": wrapper("open_tree", -100, b"/", 0),  # the kernel: a file descriptor
    "keyctl(GET_KEYRING_ID)": syscall(nr["keyctl"], 0, -4, 0),  # the kernel: the user keyring's id
    "add_key": syscall(nr["add_key"], 0, 0, 0, 0, -2),  # the kernel: EFAULT
    "request_key": syscall(nr["request_key"], 0, 0, 0, 0),  # the kernel: EFAULT
    "perf_event_open": syscall(nr["perf_event_open"], 0, 0, -1, -1, 0),  # the kernel: EFAULT
    "userfaultfd(USER_MODE_ONLY)": syscall(nr["userfaultfd"], 1),  # the kernel: a file descriptor
    "io_uring_setup": syscall(nr["io_uring_setup"], 1, 0),  # the kernel: EFAULT
    "name_to_handle_at": wrapper("name_to_handle_at", -100, b"/", None, None, 0),  # the kernel: EFAULT
    "ioctl(TIOCSTI)": wrapper("ioctl", 0, 0x5412, b"x"),  # stdin is a pipe: the kernel says ENOTTY
    "ioctl(TIOCSTI | 1 << 32)": syscall(nr["ioctl"], 0, (1 << 32) | 0x5412, 0),
    "ioctl(TIOCLINUX)": wrapper("ioctl", 0, 0x541C, b"\x06"),
    # The kernel refuses these to an unprivileged process with EPERM too.
    "mount": wrapper("mount", b"none", b"/tmp", b"tmpfs", 0, None),
    "umount2": wrapper("umount2", b"/tmp", 0),
    "pivot_root": syscall(nr["pivot_root"], 0, 0),
    "fsopen": wrapper("fsopen", b"tmpfs", 0),
    "bpf": syscall(nr["bpf"], 0, 0, 0),
    "syslog": wrapper("klogctl", 10, None, 0),
    "init_module": wrapper("init_module", None, 0, b""),
    "kexec_load": syscall(nr["kexec_load"], 0, 0, 0, 0),
    "reboot": wrapper("reboot", 0),
    "swapon": wrapper("swapon", b"/tmp", 0),
}
# And every call of the deny list by its number, without arguments (harmless if it ran).
out["every_refused"] = {name: syscall(nr[name], 0, 0, 0, 0, 0, 0) for name in args["refused"]}
x32 = subprocess.run([sys.executable, "-c", "import ctypes; ctypes.CDLL(None).syscall(0x40000000 | 39); print('survived')"], capture_output=True, text=True)
out["x32"] = {"code": x32.returncode, "stdout": x32.stdout.strip()}

# The filesystem: what is there at all.
def listing(path):
    try:
        return sorted(os.listdir(path))
    except OSError as e:
        return errno.errorcode.get(e.errno, e.errno)
out["root"] = listing("/")
out["etc"] = listing("/etc")
out["passwd"] = open("/etc/passwd").read().splitlines()
out["visible"] = {p: os.path.lexists(p) for p in args["invisible"]}
home = os.environ["HOME"]
st = os.stat(home)
with open(os.path.join(home, "note"), "w") as fh:
    fh.write("home is writable")
out["home"] = {"path": home, "mode": oct(stat.S_IMODE(st.st_mode)), "mine": st.st_uid == os.getuid()}
out["bound"] = {p: listing(p) for p in args.get("bound", [])}
def write_to(path):
    try:
        with open(path, "w") as fh:
            fh.write("written through --bind")
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, e.errno)
out["bound_writes"] = {p: write_to(p) for p in args.get("bound_writes", [])}

# Ordinary tools.
def tool(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        return {"code": r.returncode, "stdout": r.stdout.strip()[-300:], "stderr": r.stderr.strip()[-300:]}
    except (OSError, subprocess.SubprocessError) as e:
        return {"code": None, "stdout": "", "stderr": str(e)}
out["tools"] = {
    "curl": tool(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", args["url"]]),
    "git": tool(["sh", "-c", "cd ~ && git init -q repo && cd repo && git -c user.name=agent -c user.email=agent@example.test commit -q --allow-empty -m one && git log --format=%s"]),
    "node": tool(["/run/keyvalet/node", "-e", "console.log(Object.keys(require('os').networkInterfaces()).join(','), require('os').userInfo().username)"]),
    "id": tool(["id", "-un"]),
}
print(json.dumps(out))
