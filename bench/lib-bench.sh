# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck shell=bash
# bench/lib-bench.sh: shared parts of the benchmarks (sourced, not run).
# The benchmark VM, a hand-made pull-mode backup export, timing with peak
# RSS, and medians.  Uses tests/lib.sh for vsh, vb_daemons_up and
# vb_destroy_vm.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VB_ROOT=${VB_ROOT:-$(cd "$BENCH_DIR/.." && pwd)}
VIRTBACK=${VIRTBACK:-$VB_ROOT/build/virtback}
BENCH_VM=${BENCH_VM:-vbbench}
# Disk images where QEMU (user libvirt-qemu) may open them.
VB_IMG_DIR=${BENCH_IMG_DIR:-/var/lib/libvirt/images/vbbench}
# Backups, restores and the cached input data; needs about 10 GiB free.
BENCH_WORK=${BENCH_WORK:-/var/tmp/vbbench}
BENCH_DISK=$VB_IMG_DIR/$BENCH_VM-sda.qcow2
# Where each timed command's output goes (scripts may set their own).
BENCH_LOG=${BENCH_LOG:-$BENCH_WORK/bench.log}
. "$VB_ROOT/tests/lib.sh"

# One benchmark at a time: two at once share the VM and the work directory
# and spoil each other's figures.  A pid file, not flock: an flock fd would
# be inherited by daemons the benchmark starts (libvirtd) and never let go.
bench_lock () {
  local pidf=$BENCH_WORK/.running other said=0
  mkdir -p "$BENCH_WORK"
  until (set -o noclobber; echo $$ >"$pidf") 2>/dev/null; do
    other=$(cat "$pidf" 2>/dev/null)
    if [ -n "$other" ] && kill -0 "$other" 2>/dev/null; then
      [ $said = 1 ] || echo "bench: waiting for benchmark pid $other to end ($pidf)" >&2
      said=1
      sleep 5
    else
      rm -f "$pidf"             # its owner is gone
    fi
  done
  trap 'rm -f "$BENCH_WORK/.running"' EXIT
}
bench_lock

bench_die () { echo "bench: $*" >&2; exit 1; }

# The commit measured, "+changes" when the tree differs from it.  Read-only:
# no optional locks, so a concurrent git commit is never disturbed.
bench_code_version () {
  local rev
  rev=$(git -C "$VB_ROOT" rev-parse --short HEAD 2>/dev/null) || { echo unknown; return; }
  git --no-optional-locks -C "$VB_ROOT" diff --quiet HEAD -- src meson.build 2>/dev/null ||
    rev+="+changes"
  echo "$rev"
}

bench_check_tools () {
  [ "$(id -u)" -eq 0 ] || bench_die "run as root (libvirtd, /var/lib/libvirt)"
  local t
  for t in /usr/bin/time nbdcopy qemu-img qemu-io qemu-nbd virsh virtnbdbackup "$@"; do
    command -v "$t" >/dev/null || bench_die "$t is missing (apt-get install time libnbd-bin qemu-utils virtnbdbackup)"
  done
}

# Input data, generated once and cached: 8 random files of 256 MiB (2 GiB)
# and 8 text files of 128 MiB (1 GiB).  The text is this machine's C
# headers and Python sources, so lz4 meets realistic, compressible text.
bench_make_data () {
  local d=$BENCH_WORK/data i
  mkdir -p "$d"
  for i in 0 1 2 3 4 5 6 7; do
    if [ ! -s "$d/random-$i" ]; then
      head -c 256M /dev/urandom >"$d/random-$i.tmp" && mv "$d/random-$i.tmp" "$d/random-$i"
    fi
  done
  if [ ! -s "$d/text-7" ]; then
    echo "bench: generating 1 GiB of text"
    { find /usr/include /usr/lib/python3 /usr/share/perl* -type f \
        \( -name '*.h' -o -name '*.py' -o -name '*.pm' \) -print0 2>/dev/null |
        xargs -0 cat; } >"$d/corpus"
    [ "$(stat -c %s "$d/corpus")" -gt 0 ] || bench_die "no text found for the corpus"
    while [ "$(stat -c %s "$d/corpus")" -lt $((1024 * 1024 * 1024)) ]; do
      cat "$d/corpus" "$d/corpus" | head -c 1G >"$d/corpus.tmp" && mv "$d/corpus.tmp" "$d/corpus"
    done
    for i in 0 1 2 3 4 5 6 7; do
      dd if="$d/corpus" of="$d/text-$i" bs=1M skip=$((i * 128)) count=128 status=none
    done
    rm -f "$d/corpus"
  fi
}

# bench_make_vm: (re)create the VM with an 8 GiB qcow2 disk holding 3 GiB.
# The disk is split into 16 slots of 512 MiB; even slots get 256 MiB of
# random data, odd slots 128 MiB of text, each at an offset inside the slot,
# so the data sits in 16 extents spread over the whole disk with holes
# between.  Written with qemu-io before the VM starts.
bench_make_vm () {
  local cmds=() i off
  vb_daemons_up || bench_die "libvirtd did not start"
  bench_make_data
  vb_destroy_vm "$BENCH_VM"
  # Never recreate the image under a VM that is still running.
  local names
  names=$(vsh list --all --name) || bench_die "libvirtd does not answer"
  ! grep -qx "$BENCH_VM" <<<"$names" || bench_die "could not remove the old $BENCH_VM"
  mkdir -p "$VB_IMG_DIR"
  qemu-img create -q -f qcow2 "$BENCH_DISK" 8G || bench_die "qemu-img create failed"
  for i in $(seq 0 15); do
    if ((i % 2 == 0)); then
      off=$((i * 512 + 32))
      cmds+=(-c "write -q -s $BENCH_WORK/data/random-$((i / 2)) ${off}M 256M")
    else
      off=$((i * 512 + 100))
      cmds+=(-c "write -q -s $BENCH_WORK/data/text-$((i / 2)) ${off}M 128M")
    fi
  done
  echo "bench: writing 3 GiB into $BENCH_DISK"
  qemu-io -f qcow2 "${cmds[@]}" "$BENCH_DISK" || bench_die "qemu-io write failed"
  cat >"$VB_IMG_DIR/$BENCH_VM.xml" <<XML
<domain type='$(vb_domain_type)'>
  <name>$BENCH_VM</name>
  <memory unit='MiB'>128</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='$BENCH_DISK'/><target dev='sda' bus='sata'/></disk>
  </devices>
</domain>
XML
  vsh define "$VB_IMG_DIR/$BENCH_VM.xml" >/dev/null || bench_die "could not define $BENCH_VM"
  vsh start "$BENCH_VM" >/dev/null || bench_die "could not start $BENCH_VM"
  # Warm the page cache so the first round is not the only cold one.
  cat "$BENCH_DISK" >/dev/null
}

# A pull-mode backup export made by hand, as virtback makes its own: socket
# and scratch file in a private directory that QEMU's group may enter.
bench_job_begin () {
  BENCH_JOBDIR=$(mktemp -d /var/tmp/vbbench-job.XXXXXX) || return 1
  chgrp libvirt-qemu "$BENCH_JOBDIR" && chmod 0770 "$BENCH_JOBDIR" || return 1
  cat >"$BENCH_JOBDIR/backup.xml" <<XML
<domainbackup mode='pull'>
  <server transport='unix' socket='$BENCH_JOBDIR/nbd.sock'/>
  <disks><disk name='sda' backup='yes' type='file'>
    <scratch file='$BENCH_JOBDIR/scratch-sda.qcow2'/></disk></disks>
</domainbackup>
XML
  vsh backup-begin "$BENCH_VM" "$BENCH_JOBDIR/backup.xml" >/dev/null || return 1
  # shellcheck disable=SC2034  # used by the scripts that source this
  BENCH_NBD="nbd+unix:///sda?socket=$BENCH_JOBDIR/nbd.sock"
}

bench_job_end () {
  vsh domjobabort "$BENCH_VM" >/dev/null 2>&1
  local i
  for i in $(seq 50); do vb_no_job "$BENCH_VM" && break; sleep 0.1; done
  [ -n "${BENCH_JOBDIR:-}" ] && rm -rf "$BENCH_JOBDIR"
  BENCH_JOBDIR=
}

# bench_vm_ready REUSE: with REUSE=1 keep the VM if it runs, else (re)make
# it; then end any job a killed run left on it.
bench_vm_ready () {
  if [ "$1" = 1 ] && vsh domstate "$BENCH_VM" 2>/dev/null | grep -q running; then
    vb_daemons_up
    echo "bench: reusing running VM $BENCH_VM"
  else
    bench_make_vm
  fi
  bench_no_stale_job
}

# Abort any job a killed run left behind (virtback/virtnbdbackup -k style).
bench_no_stale_job () {
  vb_no_job "$BENCH_VM" || bench_job_end
  rm -rf /var/tmp/vbbench-job.*
}

# bench_time NAME ROUND CMD...: run CMD, then sync.  Appends to $BENCH_RESULTS
# "NAME ROUND SECONDS SECONDS_WITH_SYNC PEAK_RSS_KIB EXIT".  The sync makes
# each run pay for its own writeback, not the next one's.
bench_time () {
  local name=$1 round=$2 t0 t1 t2 rss rc
  shift 2
  sync
  t0=$(date +%s.%N)
  /usr/bin/time -f %M -o "$BENCH_WORK/time.out" "$@" >>"$BENCH_LOG" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  sync
  t2=$(date +%s.%N)
  rss=$(tail -1 "$BENCH_WORK/time.out")
  [[ $rss =~ ^[0-9]+$ ]] || rss=0
  awk -v n="$name" -v r="$round" -v a="$t0" -v b="$t1" -v c="$t2" -v m="$rss" -v x="$rc" 'BEGIN {
    printf "%s %s %.3f %.3f %s %s\n", n, r, b - a, c - a, m, x >> ENVIRON["BENCH_RESULTS"]
    printf "  round %s %-22s %7.2f s  (+sync %6.2f s) %7.1f MiB  exit %s\n", r, n, b - a, c - a, m / 1024, x
  }'
  return $rc
}

# bench_table BASELINE...: medians per tool from $BENCH_RESULTS (successful
# runs only), peak RSS, and virtback's ratio to each BASELINE (pairs
# "virtback-name:baseline-name").
bench_table () {
  awk -v pairs="$*" '
    function median(a, n,   i, j, t) {
      for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
      return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
    }
    { if (!($1 in n)) order[++k] = $1 }
    $6 != 0 { bad[$1]++; if (!($1 in n)) n[$1] = 0; next }
    { i = ++n[$1]; w[$1, i] = $3; s[$1, i] = $4; if ($5 > rss[$1]) rss[$1] = $5 }
    END {
      printf "%-22s %5s %10s %12s %10s\n", "tool", "runs", "median s", "+sync s", "peak RSS"
      for (j = 1; j <= k; j++) {
        t = order[j]
        for (i = 1; i <= n[t]; i++) { a[i] = w[t, i]; b[i] = s[t, i] }
        mw[t] = n[t] ? median(a, n[t]) : 0; ms[t] = n[t] ? median(b, n[t]) : 0
        printf "%-22s %5d %10.2f %12.2f %7.1f MiB%s\n", t, n[t], mw[t], ms[t], rss[t] / 1024,
          bad[t] ? sprintf("  (%d failed runs)", bad[t]) : ""
      }
      np = split(pairs, p, " ")
      if (np) print ""
      for (j = 1; j <= np; j++) {
        split(p[j], q, ":")
        if (mw[q[1]] > 0 && mw[q[2]] > 0)
          printf "%-45s %6.2f   (+sync %5.2f)\n", q[1] " / " q[2], mw[q[1]] / mw[q[2]], ms[q[1]] / ms[q[2]]
        else
          printf "%-45s    n/a   (no successful runs)\n", q[1] " / " q[2]
      }
    }' "$BENCH_RESULTS"
}
