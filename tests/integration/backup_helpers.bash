# SPDX-License-Identifier: GPL-3.0-or-later
# Helpers shared by the backup bats files.
load_lib () {
  source "$BATS_TEST_DIRNAME/../lib.sh"
  vb_daemons_up
}

# The set-up of every backup bats file: daemons once per file; per test a VM
# name from PREFIX, the test's temp dir T, and its own scratch directory
# SCRATCH (under /var/tmp: QEMU, user libvirt-qemu, must reach the socket),
# so that leftovers found there are the test's own.
bk_setup_file () {
  source "$BATS_TEST_DIRNAME/../lib.sh"
  vb_daemons_up
}

bk_setup () {
  load_lib
  VM=$1-$BATS_TEST_NUMBER
  T=$BATS_TEST_TMPDIR
  SCRATCH=$(mktemp -d /var/tmp/vbtest-scratch.XXXXXX)
  chmod 755 "$SCRATCH"
  export VB_SCRATCH_OPT="-S $SCRATCH"
}

bk_teardown () {
  vb_destroy_vm "$VM"
  rm -rf "$SCRATCH" ${BK_JOBDIR:+"$BK_JOBDIR"}
}

# A directory for a backup job the test starts itself (QEMU must reach it); teardown
# removes it even when the test failed half-way.
bk_job_dir () {
  BK_JOBDIR=$(mktemp -d /var/tmp/vbjob.XXXXXX) && chgrp libvirt-qemu "$BK_JOBDIR" &&
    chmod 770 "$BK_JOBDIR"
}

# Nothing of a run may be left behind: no job, no private dir, no partial file.
assert_clean () {
  local vm=$1 dir=$2
  vb_no_job "$vm" || { echo "job left on $vm"; return 1; }
  # Private directories are checked under the scratch dir the test gave (-S).
  [ -z "${SCRATCH:-}" ] || [ -z "$(ls -A "$SCRATCH")" ] || { echo "private dir left"; ls -la "$SCRATCH"; return 1; }
  [ -z "$dir" ] || ! ls "$dir"/*.partial 2>/dev/null | grep -q . || { echo "partial left"; return 1; }
}

# adler32 of a file, as the .chksum files hold it.
adler () { python3 -c 'import sys,zlib; print(zlib.adler32(open(sys.argv[1],"rb").read()))' "$1"; }

# Run virtback and keep output in $output/$status like bats 'run'.
# The output is echoed so that bats shows it when the test fails.
vbk () { run "$VIRTBACK" "$@"; echo "virtback $*: status $status"; echo "$output"; }

# "! cmd" does not fail a bats test unless it is the last command; use "not cmd".
not () { if "$@"; then echo "expected to fail: $*"; return 1; fi; return 0; }
