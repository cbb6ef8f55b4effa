#!/bin/sh
# keyvalet run: the sandbox's set-up. Runs as pid 1 of the sandbox's new PID namespace, as root of
# its new mount, network, IPC, UTS and cgroup namespaces (real root, or root of a user namespace),
# builds its filesystem, then drops every privilege and execs the relay (src/sandbox/relay.ts),
# which starts the command. Any failure aborts before the command runs (set -e).
#
# usage: setup.sh ROOT LINKS CA WORKDIR UID GID MODE NODE RELAY [OP PATH]... -- COMMAND [ARG]...
#   ROOT     an empty host directory that becomes the sandbox's /
#   LINKS    a host folder of keyvalet's Unix sockets (forward.sock, and gateway.sock when there is
#            one), each bound at /run/keyvalet/<name>; the relay serves them on the loopback
#   NODE     the Node binary and RELAY the relay script, bound (read-only) at /run/keyvalet/node and relay.ts
#   CA       keyvalet's CA certificate, bound at /run/keyvalet/ca.pem
#   MODE     root (setpriv to UID:GID) or userns (a nested user namespace mapping UID:GID)
#   OP PATH  in order: "mask" (an empty read-only tmpfs, or /dev/null for a file) or "work" (the
#            host folder bound read-write at the same path); parents come before children.
set -eu
# Exit 125 on any failure before the command runs; a signal from keyvalet stops the set-up too
# (pid 1 only receives the signals it handles).
trap 'echo "keyvalet sandbox: set-up failed" >&2; exit 125' EXIT
trap 'trap - EXIT; exit 129' HUP
trap 'trap - EXIT; exit 130' INT
trap 'trap - EXIT; exit 143' TERM
root=$1 links=$2 ca=$3 workdir=$4 uid=$5 gid=$6 mode=$7 node=$8 relay=$9
shift 9

# The whole host tree, read-only (a bind remount is per mount, so every submount is remounted).
# The host's /proc, /dev, /tmp and /run are covered by private replacements below (in a user
# namespace they cannot be unmounted: the kernel locks mounts copied from a more privileged one).
mount --rbind / "$root"
while read -r _ _ _ _ point opts _; do
  case $point in
    "$root"/proc | "$root"/proc/* | "$root"/dev | "$root"/dev/* | "$root"/tmp | "$root"/tmp/* | "$root"/run | "$root"/run/*) continue ;;
    "$root" | "$root"/*) ;;
    *) continue ;;
  esac
  opts=${opts#r[wo]}
  mount -o "remount,bind,ro,nosuid,nodev${opts}" "$point"
done < /proc/self/mountinfo

mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$root/tmp"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"

# A minimal /dev: the harmless devices, bound from the host (mknod is not allowed in a user namespace).
mount -t tmpfs -o nosuid,nodev,noexec,mode=755 tmpfs "$root/dev"
for dev in null zero full random urandom tty; do
  touch "$root/dev/$dev"
  mount --bind "/dev/$dev" "$root/dev/$dev"
done
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mkdir "$root/dev/shm"
mount -t tmpfs -o nosuid,nodev,noexec,mode=1777 tmpfs "$root/dev/shm"
mount -o remount,bind,ro,nosuid,nodev,noexec "$root/dev"

# /run holds only keyvalet's socket and CA: no host socket (D-Bus, a resolver, a container engine).
mount -t tmpfs -o nosuid,nodev,noexec,mode=755 tmpfs "$root/run"
mkdir "$root/run/keyvalet"
touch "$root/run/keyvalet/ca.pem" "$root/run/keyvalet/node" "$root/run/keyvalet/relay.ts"
relays=
# The forward proxy at 127.0.0.1:8789; the gateway at 127.0.0.2:8787, an address of its own so that
# NO_PROXY can name it without a port (curl ignores ports there).
for sock in forward:127.0.0.1:8789 gateway:127.0.0.2:8787; do
  name=${sock%%:*} at=${sock#*:}
  [ -S "$links/$name.sock" ] || continue
  touch "$root/run/keyvalet/$name.sock"
  mount --bind "$links/$name.sock" "$root/run/keyvalet/$name.sock"
  relays="$relays $at=/run/keyvalet/$name.sock"
done
mount --bind -o ro "$ca" "$root/run/keyvalet/ca.pem"
# The relay and the Node that runs it, wherever keyvalet is installed (under /tmp, which the
# sandbox replaces, or under a home folder it hides).
mount --bind -o ro "$node" "$root/run/keyvalet/node"
mount --bind -o ro "$relay" "$root/run/keyvalet/relay.ts"
mount -o remount,bind,ro,nosuid,nodev,noexec "$root/run"

while [ "$1" != -- ]; do
  op=$1 path=$2
  shift 2
  case $op in
    mask)
      if [ -d "$root$path" ]; then
        mount -t tmpfs -o ro,nosuid,nodev,noexec,size=4k,mode=000 tmpfs "$root$path"
      elif [ -e "$root$path" ]; then
        mount --bind -o ro /dev/null "$root$path"
      fi ;;
    work)
      mkdir -p "$root$path"
      mount --bind -o nosuid,nodev "$path" "$root$path" ;;
    *) echo "keyvalet sandbox: unknown set-up step $op" >&2; exit 1 ;;
  esac
done
shift

ip link set lo up
hostname keyvalet-sandbox

mkdir "$root/tmp/.oldroot"
cd "$root"
pivot_root . tmp/.oldroot
umount -l /tmp/.oldroot
rmdir /tmp/.oldroot
cd "$workdir"
unset OLDPWD

case $mode in
  root) exec setpriv --reuid "$uid" --regid "$gid" --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs \
    -- /run/keyvalet/node /run/keyvalet/relay.ts $relays -- "$@" ;;
  # The nested user namespace maps UID to this one's root (the invoking user); its caps are kept
  # across exec only so that setpriv can drop them for good.
  userns) exec unshare --user --map-user="$uid" --map-group="$gid" --keep-caps \
    -- setpriv --inh-caps=-all --bounding-set=-all --no-new-privs -- /run/keyvalet/node /run/keyvalet/relay.ts $relays -- "$@" ;;
  *) echo "keyvalet sandbox: unknown mode $mode" >&2; exit 1 ;;
esac
