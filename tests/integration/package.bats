#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# tests/run: alone (it installs and purges the package: dpkg, /usr/bin/virtback)
# The Debian package, built as a user would build it: dpkg-buildpackage in a
# clean clone of the checked-out commit (so only committed files count),
# checked with lintian and dpkg -c, installed with dpkg -i, used (a backup,
# a restore and a map with /usr/bin/virtback, bash completion of every
# command and option, systemd-analyze verify of its units), then purged:
# the host is left as it was.  The build's output goes to
# tests/out/package-build.log.

load backup_helpers

setup_file () {
  source "$BATS_TEST_DIRNAME/../lib.sh"
  vb_daemons_up
  if dpkg-query -W -f='${Status}' virtback 2>/dev/null | grep -q ' installed$'; then
    echo "the package virtback is installed on this host already: purge it (dpkg --purge virtback) first" >&2
    return 1
  fi
  export D=$BATS_FILE_TMPDIR
  export VERSION
  VERSION=$(meson introspect --projectinfo "$VB_ROOT/meson.build" |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
  git clone -q "$VB_ROOT" "$D/src"
  git -C "$D/src" checkout -q "$(git -C "$VB_ROOT" rev-parse HEAD)"
  mkdir -p "$VB_ROOT/tests/out"
  (cd "$D/src" && DEB_BUILD_OPTIONS="nocheck parallel=2" dpkg-buildpackage -b -us -uc) \
    >"$VB_ROOT/tests/out/package-build.log" 2>&1 ||
    { tail -30 "$VB_ROOT/tests/out/package-build.log" >&2; return 1; }
  export DEB=$D/virtback_${VERSION}_amd64.deb
  # From here on the package is this file's to purge.
  touch "$D/ours"
  dpkg -i "$DEB" >"$D/dpkg-i.log" 2>&1 || { cat "$D/dpkg-i.log" >&2; return 1; }
}

teardown_file () {
  [ ! -e "$BATS_FILE_TMPDIR/ours" ] || dpkg --purge virtback >/dev/null 2>&1 || true
}

# Per test: VM xk-pkg-N, T, and a scratch directory of its own (bk_setup).
setup () {
  bk_setup xk-pkg
}

teardown () {
  [ ! -s "$T/m/pid" ] || kill "$(cat "$T/m/pid")" 2>/dev/null || true
  bk_teardown
}

installed () { dpkg-query -W -f='${Status}' virtback 2>/dev/null | grep -q ' installed$'; }

@test "debian/control's dependencies are packages.txt's and debian/changelog has meson.build's version; the check fails when they differ" {
  run "$VB_ROOT/debian/check-control"
  echo "$output"
  [ "$status" -eq 0 ]
  # The lists it compares are the sections of packages.txt.
  grep -q 'libdeflate-dev,$' "$VB_ROOT/debian/control"
  grep -q 'qemu-utils,$' "$VB_ROOT/debian/control"

  # A package added to the run section, one taken out of the build section.
  { cat "$VB_ROOT/packages.txt"; echo "[run]"; echo "xk-extra   # a test's"; } >"$T/more.txt"
  run env VB_PACKAGES="$T/more.txt" "$VB_ROOT/debian/check-control"
  echo "$output"
  [ "$status" -eq 1 ]
  last=$("$VB_ROOT/scripts/packages.sh" run | tail -1)
  [[ $output == *"Depends of virtback (after the substvars) differs from packages.txt: set it to: "*", $last, xk-extra (or run debian/check-control --fix)" ]]
  grep -v '^libsodium-dev ' "$VB_ROOT/packages.txt" >"$T/less.txt"
  run env VB_PACKAGES="$T/less.txt" "$VB_ROOT/debian/check-control"
  echo "$output"
  [ "$status" -eq 1 ]
  [[ $output == *"Build-Depends (after debhelper-compat) differs from packages.txt"* ]]

  # --fix writes the lists into debian/control, and changes nothing else.
  cp -a "$D/src" "$T/tree"
  run env VB_PACKAGES="$T/more.txt" "$T/tree/debian/check-control" --fix "$T/tree"
  echo "$output"
  [ "$status" -eq 0 ]
  VB_PACKAGES="$T/more.txt" "$T/tree/debian/check-control" "$T/tree"
  diff "$VB_ROOT/debian/control" "$T/tree/debian/control" >"$T/diff" || true
  cat "$T/diff"
  [ "$(grep '^[<>]' "$T/diff")" = "<          $last
>          $last,
>          xk-extra" ]
  cp "$VB_ROOT/debian/control" "$T/tree/debian/control"

  # A changelog behind meson.build.
  sed -i "1s/($VERSION)/(0.0.1)/" "$T/tree/debian/changelog"
  run "$T/tree/debian/check-control" "$T/tree"
  echo "$output"
  [ "$status" -eq 1 ]
  [ "$output" = "debian/changelog: version 0.0.1 is not meson.build's $VERSION: add an entry for $VERSION (dch -v $VERSION)" ]
}

@test "dpkg-buildpackage builds virtback_<version>_amd64.deb in a clean clone; lintian reports no error or warning" {
  [ -f "$DEB" ]
  [ "$(dpkg-deb -f "$DEB" Package Version Architecture)" = "Package: virtback
Version: $VERSION
Architecture: amd64" ]
  run lintian "$DEB"
  echo "$output"
  not grep -q '^[EW]:' <<<"$output"
  # The build compiled without a warning, with Debian's hardening flags.
  grep -q -- '-D_FORTIFY_SOURCE=2' "$VB_ROOT/tests/out/package-build.log"
  not grep -q 'warning:' "$VB_ROOT/tests/out/package-build.log"
}

@test "the .deb holds the binary, every man page of man/, the completion, the units and the config as a conffile" {
  dpkg -c "$DEB" | awk '{ print $6 }' >"$T/files"
  cat "$T/files"
  for f in ./usr/bin/virtback ./usr/lib/x86_64-linux-gnu/virtback/nbdkit-virtback-plugin.so \
           ./usr/share/bash-completion/completions/virtback ./etc/virtback/virtback.conf \
           ./lib/systemd/system/virtback-run@.service ./lib/systemd/system/virtback-run@.timer \
           ./lib/systemd/system/virtback-serve.service; do
    grep -qxF "$f" "$T/files" || { echo "missing: $f"; false; }
  done
  n=0
  for p in "$VB_ROOT"/man/*.1; do
    grep -qxF "./usr/share/man/man1/$(basename "$p").gz" "$T/files" || { echo "man page missing: $p"; false; }
    n=$((n + 1))
  done
  [ "$(grep -c '^./usr/share/man/man1/.*\.1\.gz$' "$T/files")" -eq $n ]
  [ "$(dpkg-deb -I "$DEB" conffiles)" = /etc/virtback/virtback.conf ]
  dpkg-deb --fsys-tarfile "$DEB" | tar -xO ./etc/virtback/virtback.conf >"$T/conf"
  cmp "$T/conf" "$VB_ROOT/contrib/virtback.conf"
  # Depends: every package of packages.txt's run section.
  deps=$(dpkg-deb -f "$DEB" Depends)
  for p in $("$VB_ROOT/scripts/packages.sh" run); do
    # a library shlibs also names comes once, with its version
    [[ ", $deps," == *", $p,"* || ", $deps," == *", $p ("* ]] || { echo "not in Depends: $p"; false; }
  done
}

@test "the installed /usr/bin/virtback backs up a VM (full, inc), restores and maps it with its installed plugin" {
  [ "$(dpkg-query -W -f='${Status}' virtback)" = "install ok installed" ]
  [ "$(/usr/bin/virtback --version)" = "virtback $VERSION" ]
  vb_make_vm $VM 64M
  vb_guest_io $VM sda "write -P 0x41 0 2M" "write -P 0x42 30M 1M"
  run /usr/bin/virtback backup -d $VM -o "$T/b" -l full -n -S "$SCRATCH"
  echo "$output"
  [ "$status" -eq 0 ]
  vb_guest_io $VM sda "write -P 0x43 1M 2M" "write -z 30M 512k"
  run /usr/bin/virtback backup -d $VM -o "$T/b" -l inc -n -S "$SCRATCH"
  echo "$output"
  [ "$status" -eq 0 ]
  vb_snapshot_disk $VM sda "$T/live.qcow2"
  assert_clean $VM "$T/b"
  [ "$(vb_checkpoints $VM | tr '\n' ' ')" = "virtback.0 virtback.1 " ]
  /usr/bin/virtback verify -i "$T/b"
  /usr/bin/virtback restore -i "$T/b" -o "$T/r"
  vb_compare "$T/live.qcow2" "$T/r/sda.qcow2"

  # map runs nbdkit with the plugin from /usr/lib/<arch>/virtback.
  vb_bg_start "$T/m" /usr/bin/virtback map -i "$T/b" --socket "$T/map.sock"
  for i in $(seq 300); do
    grep -q '^nbd' "$T/m/out" 2>/dev/null && break
    [ -s "$T/m/rc" ] && break
    sleep 0.1
  done
  cat "$T/m/out"
  pgrep -f "nbdkit.*/usr/lib/x86_64-linux-gnu/virtback/nbdkit-virtback-plugin.so"
  nbdcopy "nbd+unix:///sda?socket=$T/map.sock" "$T/sda.raw"
  kill -TERM "$(cat "$T/m/pid")"
  [ "$(vb_bg_rc "$T/m")" -eq 0 ]
  qemu-img compare -U -q "$T/live.qcow2" "$T/sda.raw"
  [ ! -e "$T/map.sock" ]
}

# complete WORD...: what the installed completion offers for the command
# line WORD... (the last word is the one completed), one per line, sorted.
# bash-completion's own loader finds the file, as in an interactive shell.
complete_words () {
  bash -c '
    source /usr/share/bash-completion/bash_completion
    __load_completion virtback || exit 2
    fn=$(complete -p virtback | sed -n "s/.*-F \([^ ]*\) virtback$/\1/p")
    [ -n "$fn" ] || exit 3
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
    COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
    "$fn" virtback "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
    printf "%s\n" "${COMPREPLY[@]}"' bash "$@" | sort
}

@test "bash completion offers every command of virtback --help and every long option of each command's --help" {
  commands=$(/usr/bin/virtback --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }')
  echo "commands: $commands"
  [ "$(wc -w <<<"$commands")" -ge 8 ]
  diff <(complete_words virtback '') <(printf '%s\n' $commands --help --version | sort)
  for c in $commands; do
    diff <(complete_words virtback "$c" --) \
         <(/usr/bin/virtback "$c" --help | grep -o -- '--[a-z][a-z-]*' | sort -u) ||
      { echo "completion of virtback $c --"; false; }
  done
  # Short options, choices from the usage line, and a prefix.
  [[ $'\n'$(complete_words virtback backup -)$'\n' == *$'\n-d\n'* ]]
  [ "$(complete_words virtback backup -l '' | tr '\n' ' ')" = "auto copy diff full inc " ]
  [ "$(complete_words virtback backup --level i)" = inc ]
  [ "$(complete_words virtback res)" = restore ]
}

@test "systemd-analyze verify accepts the installed units; the run unit is a oneshot of virtback run, nightly and persistent" {
  u=/lib/systemd/system
  run systemd-analyze verify $u/virtback-run@.service $u/virtback-run@.timer $u/virtback-serve.service
  echo "$output"
  [ "$status" -eq 0 ]
  [ -z "$output" ]
  grep -qx 'ExecStart=/usr/bin/virtback run -c /etc/virtback/virtback.conf %i' $u/virtback-run@.service
  grep -qx 'Type=oneshot' $u/virtback-run@.service
  grep -qx 'Persistent=true' $u/virtback-run@.timer
  grep -q '^RandomizedDelaySec=' $u/virtback-run@.timer
  grep -q '^OnCalendar=' $u/virtback-run@.timer
  grep -qx 'ExecStart=/usr/bin/virtback serve --listen 127.0.0.1:54322 --control-socket /run/virtback/serve.sock' \
    $u/virtback-serve.service
  grep -qx 'RuntimeDirectoryMode=0700' $u/virtback-serve.service
  # systemd's own rating of the sandbox: "OK" or better, in both units.
  for s in virtback-run@.service virtback-serve.service; do
    systemd-analyze security --offline=true $u/$s | tail -1 | tee "$T/level"
    grep -Eq 'exposure level for .*: [0-4]\.[0-9] OK' "$T/level"
  done
  # verify does check: a unit whose program is missing fails it.
  sed 's|^ExecStart=/usr/bin/virtback |ExecStart=/usr/bin/virtback-missing |' $u/virtback-serve.service >"$T/virtback-serve.service"
  run systemd-analyze verify "$T/virtback-serve.service"
  echo "$output"
  [ "$status" -ne 0 ]
  [[ $output == *"/usr/bin/virtback-missing is not executable"* ]]
}

@test "dpkg --purge removes every file of the package, the config too" {
  dpkg -L virtback >"$T/files"
  run dpkg --purge virtback
  echo "$output"
  [ "$status" -eq 0 ]
  not installed
  while read -r f; do
    [ -d "$f" ] || [ ! -e "$f" ] || { echo "left: $f"; false; }
  done <"$T/files"
  [ ! -e /etc/virtback ]
  [ ! -e /usr/bin/virtback ]
}
