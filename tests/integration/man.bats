#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# Each subcommand's man page documents every long option its --help lists, and no other.

setup () {
  VIRTBACK=${VIRTBACK:-$BATS_TEST_DIRNAME/../../build/virtback}
  MAN=$BATS_TEST_DIRNAME/../../man
}

check_cmd () {
  local cmd=$1 help page
  help=$("$VIRTBACK" "$cmd" --help | grep -o -- '--[a-z][a-z-]*' | sort -u)
  page=$(sed 's/\\-/-/g' "$MAN/virtback-$cmd.1" | grep -o -- '--[a-z][a-z-]*' | sort -u)
  [ -n "$help" ]
  diff <(echo "$help") <(echo "$page")
}

@test "man page of backup matches --help" { check_cmd backup; }
@test "man page of restore matches --help" { check_cmd restore; }
@test "man page of dump matches --help" { check_cmd dump; }
@test "man page of verify matches --help" { check_cmd verify; }
@test "man page of map matches --help" { check_cmd map; }
@test "man page of mount matches --help" { check_cmd mount; }
@test "man page of umount matches --help" { check_cmd umount; }
@test "man page of serve matches --help" { check_cmd serve; }
@test "man page of run matches --help" { check_cmd run; }
@test "man page of prune matches --help" { check_cmd prune; }
@test "man page of job matches --help" { check_cmd job; }
@test "man page of download matches --help" { check_cmd download; }
@test "man page of upload matches --help" { check_cmd upload; }
@test "man page of replicate matches --help" { check_cmd replicate; }
@test "man page of replica matches --help" { check_cmd replica; }
@test "man page of failover matches --help" { check_cmd failover; }
@test "man pages render without warnings" {
  for p in "$MAN"/*.1; do
    out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$p" 2>&1 >/dev/null)
    [ -z "$out" ] || { echo "$p: $out"; false; }
  done
}
