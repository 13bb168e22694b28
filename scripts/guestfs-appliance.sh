#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# scripts/guestfs-appliance.sh [--force] [DIR]: build, once, the libguestfs
# appliance that "virtback mount" boots to read guest filesystems (default
# DIR: /var/cache/virtback/appliance, or $VIRTBACK_APPLIANCE).  Run as root
# after installing the run section of packages.txt.  virtback uses DIR by
# itself when it holds an appliance.  Prints DIR.
#
# Why a fixed appliance: supermin would rebuild its cached appliance
# whenever the dpkg database changes, at every such launch.  Why a kernel
# of our own: the host may have none (containers); it is Debian's
# linux-image-amd64, downloaded with apt-get download and unpacked here.
# supermin 5.2 stops when the host has no /lib/modules: the build then runs
# in a mount namespace of its own where a read-only overlay adds an empty
# one, and the host is not touched.  Last, one test launch picks the
# backend settings: KVM where it works, else TCG (force_tcg; the build
# itself boots under TCG), written to
# DIR/backend-settings for virtback to pass on.
set -eu
force=0
[ "${1:-}" = --force ] && { force=1; shift; }
DIR=${1:-${VIRTBACK_APPLIANCE:-/var/cache/virtback/appliance}}

die () { echo "guestfs-appliance.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (the appliance is built from the host's packages)"
for t in libguestfs-make-fixed-appliance supermin guestfish apt-get apt-cache dpkg-deb depmod unshare; do
  command -v "$t" >/dev/null || die "$t is missing: run scripts/packages.sh --install build run"
done
if [ $force = 0 ] && [ -s "$DIR/README.fixed" ] && [ -s "$DIR/kernel" ] &&
   [ -s "$DIR/root" ] && [ -e "$DIR/backend-settings" ]; then
  echo "$DIR"
  exit 0
fi

mkdir -p "$(dirname "$DIR")"
WORK=$(mktemp -d "$(dirname "$DIR")/.appliance.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/deb" "$WORK/k" "$WORK/tmp" "$WORK/cache" "$WORK/lib/modules"
chmod 755 "$WORK/deb"   # apt's sandbox user writes the download there

pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$pkg" ] || die "apt-cache knows no linux-image-amd64 dependency: run apt-get update"
log=$(cd "$WORK/deb" && apt-get download -q "$pkg" 2>&1) || die "could not download $pkg: $log"
dpkg-deb -x "$WORK"/deb/*.deb "$WORK/k"
kver=$(ls "$WORK/k/lib/modules")
[ -n "$kver" ] && [ -e "$WORK/k/boot/vmlinuz-$kver" ] || die "$pkg holds no kernel"
depmod -b "$WORK/k" "$kver"   # the .deb ships no modules.dep

export SUPERMIN_KERNEL=$WORK/k/boot/vmlinuz-$kver
export SUPERMIN_MODULES=$WORK/k/lib/modules/$kver
export SUPERMIN_KERNEL_VERSION=$kver
export LIBGUESTFS_BACKEND=direct LIBGUESTFS_CACHEDIR=$WORK/cache TMPDIR=$WORK/tmp
# The build boots the appliance once: under TCG, which works everywhere.
export LIBGUESTFS_BACKEND_SETTINGS=force_tcg
lib=$(readlink -f /lib)
if [ -d /lib/modules ]; then
  libguestfs-make-fixed-appliance "$WORK/out" >"$WORK/build.log" 2>&1 ||
    die "libguestfs-make-fixed-appliance failed: $(grep -m1 -i error "$WORK/build.log" || tail -1 "$WORK/build.log")"
else
  unshare -m sh -c 'mount --make-rprivate / &&
    mount -t overlay overlay -o "lowerdir=$1/lib:$2" "$2" &&
    libguestfs-make-fixed-appliance "$1/out"' sh "$WORK" "$lib" >"$WORK/build.log" 2>&1 ||
    die "libguestfs-make-fixed-appliance failed: $(grep -m1 -i error "$WORK/build.log" || tail -1 "$WORK/build.log")"
fi

# One launch with the new appliance under KVM: where it fails (QEMU aborts
# in KVM on some nested hosts), virtback keeps TCG.
export LIBGUESTFS_PATH=$WORK/out
settings=force_tcg
if [ -e /dev/kvm ] &&
   LIBGUESTFS_BACKEND_SETTINGS= timeout 300 guestfish -a /dev/null run >"$WORK/kvm.log" 2>&1; then
  settings=
fi
echo "$settings" >"$WORK/out/backend-settings"
sync -f "$WORK/out/root"

rm -rf "$DIR.old"
[ ! -e "$DIR" ] || mv "$DIR" "$DIR.old"
mv "$WORK/out" "$DIR"
rm -rf "$DIR.old"
echo "$DIR"
