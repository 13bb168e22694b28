#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# scripts/packages.sh [--install|--deb] SECTION...: the Debian packages of those
# sections of packages.txt (build, run, demo, test; "all" for every one), one
# a line, in the file's order.  Fails, naming the line, on an unknown section
# or a package named twice in the file: each package is listed once.
# --deb prints them as one Debian dependency list ("a, b, c") instead, less
# the build-essential packages (gcc, make ...): Debian policy takes them as
# present and lintian rejects a Build-Depends on them.  debian/control's
# Build-Depends and Depends are these lists (debian/check-control holds it
# to that).
# --install installs them instead (as root, apt-get, no recommends), running
# apt-get update first when one is missing or apt has no package lists (the
# tiny guest's kernel comes from "apt-get download", which needs them).
# VB_PACKAGES=FILE reads another list (the suite's checks of this script).
set -eu
LIST=${VB_PACKAGES:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/packages.txt}
install=0 deb=0
[ "${1:-}" = --install ] && { install=1; shift; }
[ "${1:-}" = --deb ] && { deb=1; shift; }

[ $# -gt 0 ] || { echo "usage: $0 [--install|--deb] SECTION... (build, run, demo, test, all)" >&2; exit 2; }
[ -r "$LIST" ] || { echo "packages.sh: cannot read $LIST" >&2; exit 1; }
for s in "$@"; do
  case $s in
    build|run|demo|test|all) ;;
    *) echo "packages.sh: unknown section '$s': use build, run, demo, test or all" >&2; exit 2 ;;
  esac
done

names () {
  awk -v want=" $* " -v list="$LIST" '
    { sub(/#.*/, ""); gsub(/^[ \t]+|[ \t]+$/, "") }
    $0 == "" { next }
    /^\[.*\]$/ {
      sec = substr($0, 2, length($0) - 2)
      if (sec ~ /^(build|run|demo|test)$/) next
      printf "packages.sh: %s:%d: unknown section [%s]: use build, run, demo or test\n", list, FNR, sec > "/dev/stderr"
      bad = 1; exit 1
    }
    NF != 1 || sec == "" {
      printf "packages.sh: %s:%d: expected one package name under a [section]\n", list, FNR > "/dev/stderr"
      bad = 1; exit 1
    }
    $1 in seen {
      printf "packages.sh: %s:%d: %s is listed twice (also line %d): keep one\n", list, FNR, $1, seen[$1] > "/dev/stderr"
      bad = 1; exit 1
    }
    { seen[$1] = FNR }
    index(want, " " sec " ") || index(want, " all ") { out[++n] = $1 }
    END { if (!bad) for (i = 1; i <= n; i++) print out[i] }
  ' "$LIST"
}

if [ $deb = 1 ]; then
  mapfile -t pkgs < <(names "$@")
  [ ${#pkgs[@]} -gt 0 ] || exit 1          # names said why
  printf '%s\n' "${pkgs[@]}" | grep -vxE 'libc6-dev|libc-dev|gcc|g\+\+|make|dpkg-dev' |
    paste -sd, | sed 's/,/, /g'
  exit 0
fi
if [ $install = 0 ]; then
  names "$@"
  exit 0
fi
mapfile -t pkgs < <(names "$@")
[ ${#pkgs[@]} -gt 0 ] || exit 1          # names said why
# dpkg-query names only the packages it knows: count those installed.
ok=$(dpkg-query -W -f='${db:Status-Abbrev}\n' "${pkgs[@]}" 2>/dev/null | grep -c '^ii' || true)
lists=$(find /var/lib/apt/lists -name '*_Packages*' 2>/dev/null | head -1)
if [ "$ok" -eq ${#pkgs[@]} ] && [ -n "$lists" ]; then
  echo "all ${#pkgs[@]} packages installed"
  exit 0
fi
echo "apt-get install ($((${#pkgs[@]} - ok)) of ${#pkgs[@]} packages missing)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${pkgs[@]}"
