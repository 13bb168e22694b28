#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# tests/run: alone (the demo VM virtback-demo is host-wide; it builds and starts daemons)
# The quickstart and the package list it installs from.
# - packages.txt's build section covers every dependency() of the meson.build
#   files: each pkg-config name is mapped to its Debian package by asking
#   dpkg which package holds the .pc file pkg-config finds.
# - scripts/quickstart.sh runs end to end on this host into a backup
#   directory of the test's own, then --remove deletes its VM virtback-demo
#   (the quickstart's own name: no other file uses it).  Its output goes to
#   tests/out/quickstart.log.

setup_file () {
  source "$BATS_TEST_DIRNAME/backup_helpers.bash"
  bk_setup_file
}

setup () {
  source "$BATS_TEST_DIRNAME/backup_helpers.bash"
  load_lib
  T=$BATS_TEST_TMPDIR
}

DEMO_DIR=/var/lib/libvirt/images/virtback-demo

# Whatever a test leaves of the demo VM, --remove deletes.
teardown () {
  if vsh dominfo virtback-demo >/dev/null 2>&1 || [ -e "$DEMO_DIR" ]; then
    "$VB_ROOT/scripts/quickstart.sh" --remove >/dev/null 2>&1 || true
  fi
}

# The names of every dependency('NAME') in the tree's meson.build files.
meson_deps () {
  find "$VB_ROOT" -name meson.build -not -path "$VB_ROOT/build*" -not -path "$VB_ROOT/tests/out/*" \
    -exec grep -ho "dependency *( *'[^']*'" {} + | sed "s/.*'\(.*\)'/\1/" | sort -u
}

# check_deps LIST: each dependency's package must be in LIST's build section;
# prints one line per dependency and fails naming any that is not.
check_deps () {
  local list=$1 build dep dir pkg bad=0
  build=$(VB_PACKAGES=$list "$VB_ROOT/scripts/packages.sh" build) || return 1
  for dep in $(meson_deps); do
    # meson's own: the compiler's thread flags, no package.
    [ "$dep" = threads ] && { echo "threads: built into meson"; continue; }
    dir=$(pkg-config --variable=pcfiledir "$dep") || { echo "$dep: pkg-config finds no $dep.pc"; bad=1; continue; }
    pkg=$(dpkg -S "$dir/$dep.pc" | cut -d: -f1) || { echo "$dep: no package holds $dir/$dep.pc"; bad=1; continue; }
    if grep -qx "$pkg" <<<"$build"; then
      echo "$dep: $pkg"
    else
      echo "$dep: $pkg is not in the build section of $list"
      bad=1
    fi
  done
  return $bad
}

@test "packages.txt: every dependency() of the meson.build files comes from a package in its build section" {
  run meson_deps
  echo "$output"
  # The check reads the subdirectories too, and finds the libraries it must.
  grep -qx libdeflate <<<"$output"
  grep -qx libvirt-qemu <<<"$output"
  run check_deps "$VB_ROOT/packages.txt"
  echo "$output"
  [ "$status" -eq 0 ]
  grep -qx 'libdeflate: libdeflate-dev' <<<"$output"
  # Each package is named once in the whole list.
  run "$VB_ROOT/scripts/packages.sh" all
  [ "$status" -eq 0 ]
  [ -z "$(sort <<<"$output" | uniq -d)" ]
}

@test "packages.txt: the check fails when a dependency's package is missing from the list" {
  grep -v '^libdeflate-dev ' "$VB_ROOT/packages.txt" >"$T/packages.txt"
  run check_deps "$T/packages.txt"
  echo "$output"
  [ "$status" -eq 1 ]
  grep -qx "libdeflate: libdeflate-dev is not in the build section of $T/packages.txt" <<<"$output"
  # A package named twice is refused with its line.
  { cat "$VB_ROOT/packages.txt"; echo "[test]"; echo "gcc"; } >"$T/twice.txt"
  run env VB_PACKAGES="$T/twice.txt" "$VB_ROOT/scripts/packages.sh" build
  echo "$output"
  [ "$status" -ne 0 ]
  [[ $output == *"gcc is listed twice"* ]]
}

# sha256 lines "HASH  NAME" the quickstart printed for the guest's files.
printed_sums () { grep -E '^ *[0-9a-f]{64}  [a-z.]+$' <<<"$output" | sed 's/^ *//'; }

@test "scripts/quickstart.sh runs end to end into its own backup directory, then --remove deletes the demo VM" {
  run "$VB_ROOT/scripts/quickstart.sh" "$T/backup"
  mkdir -p "$VB_ROOT/tests/out"
  echo "$output" >"$VB_ROOT/tests/out/quickstart.log"
  echo "$output"
  [ "$status" -eq 0 ]
  # Both backups were taken with the guest's filesystems frozen by its agent.
  [ "$(grep -c 'backup is application-consistent' <<<"$output")" = 2 ]
  not grep -q 'did not freeze' <<<"$output"
  grep -q 'chain consistent' <<<"$output"
  [ "$(printed_sums | wc -l)" = 3 ]
  printed_sums >"$T/guest.sums"

  # The backup verifies, and its newest point holds a clean ext4 with the
  # guest's files, byte for byte.
  "$VIRTBACK" verify -i "$T/backup"
  "$VIRTBACK" restore -i "$T/backup" -o "$T/r" --format raw
  e2fsck -fn "$T/r/sda.raw"
  mkdir "$T/files"
  for f in hello.txt more.bin random.bin; do
    debugfs -R "dump /$f $T/files/$f" "$T/r/sda.raw"
  done
  (cd "$T/files" && sha256sum -c "$T/guest.sums")
  debugfs -R 'stat /numbers.txt' "$T/r/sda.raw" 2>&1 | grep -q 'File not found'

  run "$VB_ROOT/scripts/quickstart.sh" --remove
  echo "$output"
  [ "$status" -eq 0 ]
  not vsh dominfo virtback-demo
  [ ! -e "$DEMO_DIR" ]
  not pgrep -f -- '-name guest=virtback-demo,'
  # The backup is kept, and still verifies.
  "$VIRTBACK" verify -i "$T/backup"
}
