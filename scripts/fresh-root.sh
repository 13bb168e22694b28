#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# scripts/fresh-root.sh: run a command as a new user would on a fresh Debian
# 12 machine: in a debootstrap minbase root, unpacked anew for each run, with
# a copy of this checkout at /root/virtback (the working tree's files that git
# tracks or does not ignore: no build directories).
#
#   sudo scripts/fresh-root.sh COMMAND [ARG...]     e.g. scripts/quickstart.sh
#
# COMMAND runs in /root/virtback with a clean environment, as root, in mount
# and PID namespaces of its own, entered with pivot_root: a /dev of its own
# (a tmpfs with fresh nodes, so that a chgrp of /dev/kvm there never reaches
# the host's), its own /proc, the host's /sys and network.  The daemons it
# starts (virtlogd, libvirtd, QEMU) see only the root's /run and
# /var/lib/libvirt, never the host's libvirtd or its VMs.  When COMMAND ends,
# the root's domains are destroyed and its daemons stopped (libvirt removes
# the cgroups it made, which live in the host's /sys), the PID namespace
# ends whatever is left, and the root is deleted.  A SIGTERM or SIGINT does
# the same.  Exit status: COMMAND's, or 125 when the root cannot be made.
#
# VB_FRESH_CACHE (default /var/cache/virtback-test) keeps bookworm-minbase.tgz,
# made by debootstrap on first use (about 30 s) from the mirror in
# /etc/apt/sources.list.d/debian.sources, and apt's downloaded .debs
# (apt-archives/), so that a later run installs the same packages without
# fetching them again.  VB_FRESH_WORK (default /var/tmp) is where roots go.
set -euo pipefail
SELF=$(readlink -f "${BASH_SOURCE[0]}")
ROOT=$(cd "$(dirname "$SELF")/.." && pwd)
CACHE=${VB_FRESH_CACHE:-/var/cache/virtback-test}
TARBALL=$CACHE/bookworm-minbase.tgz

die () { echo "fresh-root: $*" >&2; exit 125; }

# ---- inside: PID 1 of the new namespaces, after pivot_root ----

# Destroy the root's domains and stop its daemons, so that libvirt removes
# what it made outside the root (cgroups) before the namespace ends.
stop_daemons () {
  local d p f
  if [ -S /run/libvirt/libvirt-sock ]; then
    for d in $(virsh -q -c qemu:///system list --name 2>/dev/null); do
      virsh -q -c qemu:///system destroy "$d" >/dev/null 2>&1 || true
    done
  fi
  for f in /run/libvirtd.pid /run/virtlogd.pid; do
    p=$(cat "$f" 2>/dev/null) || continue
    kill "$p" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
}

inside_init () {
  local rc=0 pid
  cd /root/virtback
  "$@" &
  pid=$!
  trap 'kill -TERM $pid 2>/dev/null' TERM INT
  wait $pid || rc=$?
  # A signal ends the wait early: wait for the command itself.
  while kill -0 $pid 2>/dev/null; do wait $pid || rc=$?; done
  trap - TERM INT
  stop_daemons
  exit $rc
}

# nodes of the root's /dev: name mode; major and minor come from the host's.
DEV_NODES="null 666 zero 666 full 666 random 666 urandom 666 tty 666 kvm 600
           fuse 666 loop-control 660 net/tun 666"

make_dev () {
  local dev=$1 name mode t n
  mount -t tmpfs -o mode=0755,nosuid,size=64k dev "$dev"
  # shellcheck disable=SC2086  # a list of words
  set -- $DEV_NODES
  for n in /dev/loop[0-9]*; do [ -b "$n" ] && set -- "$@" "${n#/dev/}" 660; done
  while [ $# -gt 0 ]; do
    name=$1 mode=$2
    shift 2
    [ -e "/dev/$name" ] || continue
    t=c
    [ -b "/dev/$name" ] && t=b
    mkdir -p "$(dirname "$dev/$name")"
    # shellcheck disable=SC2046
    mknod -m "$mode" "$dev/$name" $t $(stat -c '0x%t 0x%T' "/dev/$name")
  done
  mkdir "$dev/pts" "$dev/shm"
  mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$dev/pts"
  ln -s pts/ptmx "$dev/ptmx"
  mount -t tmpfs -o mode=1777,nosuid,nodev shm "$dev/shm"
  ln -s /proc/self/fd "$dev/fd"
  ln -s /proc/self/fd/0 "$dev/stdin"
  ln -s /proc/self/fd/1 "$dev/stdout"
  ln -s /proc/self/fd/2 "$dev/stderr"
}

# In the new mount namespace: the mounts, then pivot_root into DIR.
# libvirt's QEMU namespace set-up needs the root to be a mount point.
inside_enter () {
  local dir=$1
  shift
  mount --make-rprivate /
  mount --bind "$dir" "$dir"
  mount --rbind /sys "$dir/sys"
  make_dev "$dir/dev"
  mkdir -p "$dir/var/cache/apt/archives" "$CACHE/apt-archives"
  mount --bind "$CACHE/apt-archives" "$dir/var/cache/apt/archives"
  cd "$dir"
  mkdir .oldroot
  pivot_root . .oldroot
  cd /
  # umount reads /proc/self/mountinfo: the new /proc first.
  mount -t proc proc /proc
  umount -l /.oldroot
  rmdir /.oldroot
  exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb LANG=C.UTF-8 \
    /bin/bash /root/virtback/scripts/fresh-root.sh --init "$@"
}

# ---- outside: the host side ----

mirror () {
  awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null
}

# The cached minbase root, made once (concurrent runs wait on the lock).
make_tarball () {
  local m tmp
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock 9
  [ -s "$TARBALL" ] && return 0
  m=$(mirror)
  [ -n "$m" ] || die "no URIs: line in /etc/apt/sources.list.d/debian.sources to debootstrap from"
  command -v debootstrap >/dev/null || die "debootstrap is missing: scripts/packages.sh --install test"
  tmp=$(mktemp -d "$CACHE/debootstrap.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp' '$tmp.log' '$TARBALL.tmp'" EXIT
  chmod 0755 "$tmp"
  echo "fresh-root: debootstrap --variant=minbase bookworm from $m (once)" >&2
  if ! debootstrap --variant=minbase bookworm "$tmp" "$m" >"$tmp.log" 2>&1; then
    tail -20 "$tmp.log" >&2
    rm -rf "$tmp" "$tmp.log"
    die "debootstrap failed"
  fi
  tar -C "$tmp" -czf "$TARBALL.tmp" .
  sync "$TARBALL.tmp"
  mv "$TARBALL.tmp" "$TARBALL"
  sync "$CACHE"
  rm -rf "$tmp" "$tmp.log"
  trap - EXIT
  exec 9>&-
}

copy_checkout () {
  local dst=$1
  mkdir -p "$dst"
  # Tracked files deleted in the working tree are left out.
  (cd "$ROOT" && git ls-files -z -co --exclude-standard |
     while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
     tar --null -T - -cf -) | tar -C "$dst" -xf -
}

WORK=
NS_PID=
cleanup () {
  local rc=$? left
  trap - EXIT TERM INT
  if [ -n "$NS_PID" ] && kill -0 "$NS_PID" 2>/dev/null; then
    kill -TERM "$(pgrep -P "$NS_PID" | head -1)" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$NS_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$NS_PID" 2>/dev/null || true
    wait "$NS_PID" 2>/dev/null || true
  fi
  if [ -n "$WORK" ]; then
    left=$(findmnt -rn -o TARGET | grep -F "$WORK" || true)
    [ -z "$left" ] || die "mounts left under $WORK (not removed): $left"
    rm -rf "$WORK"
  fi
  exit $rc
}

outside () {
  [ "$(id -u)" -eq 0 ] || die "run as root: sudo $0 COMMAND"
  [ $# -gt 0 ] || die "usage: $0 COMMAND [ARG...] (run in /root/virtback of a fresh root)"
  git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1 || die "$ROOT is not a git checkout"
  trap 'exit 143' TERM INT
  make_tarball
  trap cleanup EXIT
  WORK=$(mktemp -d "${VB_FRESH_WORK:-/var/tmp}/vb-fresh.XXXXXX")
  mkdir "$WORK/root"
  tar -C "$WORK/root" -xzf "$TARBALL"
  # It becomes /: QEMU, as user libvirt-qemu, must reach its modules.
  chmod 0755 "$WORK/root"
  cp /etc/resolv.conf "$WORK/root/etc/resolv.conf"
  copy_checkout "$WORK/root/root/virtback"
  local rc=0
  # --kill-child: if this shell dies, the namespace's PID 1 and all in it die.
  unshare --mount --pid --fork --kill-child --propagation private \
    /bin/bash "$SELF" --enter "$WORK/root" "$@" &
  NS_PID=$!
  wait "$NS_PID" || rc=$?
  NS_PID=
  return $rc
}

case ${1:-} in
  --enter) shift; inside_enter "$@" ;;
  --init) shift; inside_init "$@" ;;
  *) outside "$@" ;;
esac
