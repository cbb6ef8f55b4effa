"""Runs inside a `keyvalet run` sandbox by test/sandbox/run.test.ts: tries every way out and every
way to a secret, and prints what it found as one JSON object. Needles (the real secret, the
master key) come on stdin, so they are in no file and no environment the walk could find.
Every loop is bounded (files, bytes, ports, time)."""
import json, os, socket, sys, time, urllib.request

args = json.loads(sys.argv[1])
needles = [n.encode() for n in json.loads(sys.stdin.read())]
out = {}

def attempt(fn):
    try:
        return {"ok": True, "value": fn()}
    except Exception as e:  # the error's kind is the result
        return {"ok": False, "error": type(e).__name__, "errno": getattr(e, "errno", None), "message": str(e)[:200]}

def hits(data):
    return [i for i, n in enumerate(needles) if n in data]

# The positive control: an allowed request through keyvalet, the way an unmodified tool makes it.
def allowed():
    with urllib.request.urlopen(args["allowed_url"], timeout=10) as r:
        return {"status": r.status, "body": r.read().decode()}
out["allowed"] = attempt(allowed)
# The same through the gateway relay, the way an SDK with a base URL makes it.
if "gateway_path" in args:
    def via_gateway():
        req = urllib.request.Request(os.environ["KEYVALET_GATEWAY"] + args["gateway_path"], headers={"Authorization": "Bearer " + os.environ["KEYVALET_TASK_KEY"]})
        with urllib.request.urlopen(req, timeout=10) as r:
            return {"status": r.status, "body": r.read().decode()}
    out["gateway"] = attempt(via_gateway)
if "denied_url" in args:
    def denied():
        try:
            urllib.request.urlopen(args["denied_url"], timeout=10)
        except urllib.error.HTTPError as e:
            return {"status": e.code, "body": e.read().decode()}
    out["denied"] = attempt(denied)

out["env"] = dict(os.environ)
out["env_hits"] = hits(json.dumps(out["env"]).encode())
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
out["status"] = {k: status[k].strip() for k in ("Uid", "Gid", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp") if k in status}

# Every process visible, its command line and environment.
procs = {}
for pid in sorted(p for p in os.listdir("/proc") if p.isdigit()):
    entry = {}
    for name in ("cmdline", "environ"):
        r = attempt(lambda: open(f"/proc/{pid}/{name}", "rb").read())
        entry[name] = r["value"].decode(errors="replace").split("\0") if r["ok"] else r["error"]
        if r["ok"] and hits(r["value"]):
            entry[name + "_hits"] = hits(r["value"])
    procs[pid] = entry
out["procs"] = procs

# A bounded walk of every readable file, the places that matter first.
deadline = time.monotonic() + args.get("walk_seconds", 2.5)
seen, files, unreadable, found, timed_out = set(), 0, 0, [], False
for top in args["walk_first"] + ["/"]:
    for dirpath, dirnames, filenames in os.walk(top):
        if dirpath in seen or dirpath.startswith(("/proc", "/sys", "/dev")):
            dirnames[:] = []
            continue
        seen.add(dirpath)
        for f in filenames:
            if files >= 60000 or time.monotonic() > deadline:
                timed_out = True
                break
            path = os.path.join(dirpath, f)
            try:
                if not os.path.isfile(path):
                    continue
                with open(path, "rb") as fh:
                    data = fh.read(256 << 10)
                files += 1
                if hits(data):
                    found.append(path)
            except OSError:
                unreadable += 1
        if timed_out:
            break
out["walk"] = {"files": files, "unreadable": unreadable, "found": found, "timed_out": timed_out, "dirs": len(seen)}
out["hidden"] = {p: attempt(lambda p=p: {"entries": os.listdir(p) if os.path.isdir(p) else None, "size": len(open(p, "rb").read()) if os.path.isfile(p) else None, "mode": oct(os.stat(p).st_mode)}) for p in args["hidden"]}

# The network: interfaces, routes, every TCP port on the loopback, direct connections, DNS.
out["interfaces"] = [name for _, name in socket.if_nameindex()]
out["routes"] = open("/proc/net/route").read().splitlines()[1:]
def scan(address):
    found = []
    for port in range(1, 65536):  # a closed port on a loopback answers at once
        with socket.socket() as s:
            s.settimeout(1)
            # a connection to itself (source port = destination port) is not a listener
            if s.connect_ex((address, port)) == 0 and s.getsockname() != s.getpeername():
                found.append(port)
    return found
out["loopback_open_ports"] = scan("127.0.0.1")
out["gateway_open_ports"] = scan("127.0.0.2")

def tcp(host, port):
    def go():
        s = socket.create_connection((host, port), timeout=2)
        s.close()
        return "connected"
    return attempt(go)
out["direct"] = {f"{h}:{p}": tcp(h, p) for h, p in args["direct"]}

def udp_dns(server):
    def go():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(1)
        query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"
        s.connect((server, 53))  # connected: a refusal comes back as an error at once
        s.send(query)
        return s.recv(512).hex()
    return attempt(go)
resolv = [l.split()[1] for l in attempt(lambda: open("/etc/resolv.conf").read().splitlines()).get("value", []) if l.startswith("nameserver") and len(l.split()) > 1]
servers = sorted(set([s for s in resolv if ":" not in s] + ["8.8.8.8", "1.1.1.1", "127.0.0.53", "127.0.0.1"]))
out["dns_udp"] = {s: udp_dns(s) for s in servers}
out["dns_tcp"] = {s: tcp(s, 53) for s in servers}
out["getaddrinfo"] = attempt(lambda: socket.getaddrinfo("example.com", 443))

# Writes: everywhere but the working folder and /tmp must fail.
def write(path):
    def go():
        with open(path, "w") as fh:
            fh.write("written from the sandbox")
        return "written"
    return attempt(go)
out["writes"] = {p: write(p) for p in args["writes"]}
print(json.dumps(out))
