#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# bench/bench-cases.sh: the shape cases of the data path, each timed with
# virtback, virtnbdbackup (Debian's 1.9.15) and, where it applies, nbdcopy,
# interleaved over several rounds in one run; medians, peak RSS and ratios.
#   fragmented  a 64 GiB disk (qcow2 cluster_size=4096) with 131072
#               separate 4 KiB allocated extents, full copy
#   sparse      1 GiB of data on a 4 TiB virtual disk, against the same
#               1 GiB on an 8 GiB disk (virtback's time ratio of the two)
#   inc         5% of an 8 GiB disk dirty in 1 MiB pieces scattered over it,
#               an incremental backup after a full
#   stdout      "virtback backup -o -" of the 3 GiB benchmark disk into
#               /dev/null (needs the vbbench VM of bench-backup.sh)
# Usage: bench/bench-cases.sh [-r ROUNDS] [CASE...]   (default: all cases)
# With VIRTBACK_B=/path/to/another/virtback, the fragmented and sparse cases
# also time that build ("virtback-b"), interleaved: two versions compared in
# one run.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib-bench.sh"

ROUNDS=3
while [ $# -gt 0 ]; do
  case $1 in
    -r) ROUNDS=$2; shift ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
  esac
  shift
done
CASES=${*:-fragmented sparse inc stdout}
bench_check_tools
mkdir -p "$BENCH_WORK"
: >"$BENCH_WORK/bench.log"
vb_daemons_up || bench_die "libvirtd did not start"

# case_vm NAME IMAGE: define and start a firmware-only VM on IMAGE (sda).
# Images are named case-*.qcow2 so that vb_destroy_vm (which removes
# NAME-*.qcow2) keeps them between runs.
case_vm () {
  local name=$1 img=$2
  vb_destroy_vm "$name"
  cat >"$BENCH_WORK/$name.xml" <<XML
<domain type='$(vb_domain_type)'><name>$name</name><memory unit='MiB'>128</memory>
<os><type arch='x86_64'>hvm</type></os><devices>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
<source file='$img'/><target dev='sda' bus='sata'/></disk></devices></domain>
XML
  vsh define "$BENCH_WORK/$name.xml" >/dev/null && vsh start "$name" >/dev/null ||
    bench_die "cannot start $name"
}

# The export the other tools read, for nbdcopy.
case_nbdcopy () {
  local vm=$1 round=$2 save=$BENCH_VM
  BENCH_VM=$vm
  bench_job_begin || bench_die "backup-begin failed on $vm"
  bench_time nbdcopy "$round" nbdcopy "$BENCH_NBD" "$BENCH_WORK/out.raw"
  bench_job_end
  rm -f "$BENCH_WORK/out.raw"
  BENCH_VM=$save
}

# tool_copy NAME VM ROUND ARGS...: a fresh copy backup by virtback or the peer.
tool_copy () {
  local name=$1 vm=$2 round=$3
  shift 3
  rm -rf "$BENCH_WORK/out"
  case $name in
    virtback-b*) bench_time "$name" "$round" "$VIRTBACK_B" backup -d "$vm" -l copy -n -o "$BENCH_WORK/out" "$@" ;;
    virtback*) bench_time "$name" "$round" "$VIRTBACK" backup -d "$vm" -l copy -n -o "$BENCH_WORK/out" "$@" ;;
    virtnbdbackup*) bench_time "$name" "$round" virtnbdbackup -d "$vm" -l copy -n -o "$BENCH_WORK/out" "$@" ;;
  esac
  rm -rf "$BENCH_WORK/out"
}

run_fragmented () {
  local img=$VB_IMG_DIR/case-frag.qcow2 r
  export BENCH_RESULTS=$BENCH_WORK/fragmented-results.txt
  : >"$BENCH_RESULTS"
  mkdir -p "$VB_IMG_DIR"
  if [ ! -s "$img.done" ]; then
    echo "bench: writing 131072 extents of 4 KiB (takes minutes)"
    qemu-img create -q -f qcow2 -o cluster_size=4096 "$img" 64G
    python3 -c 'for i in range(131072): print(f"write -q -P {i % 250 + 1} {i * 512}k 4k")' |
      qemu-io -f qcow2 "$img" >/dev/null || bench_die "qemu-io failed"
    date >"$img.done"
  fi
  case_vm vbfrag "$img"
  for r in $(seq "$ROUNDS"); do
    case_nbdcopy vbfrag "$r"
    tool_copy virtback vbfrag "$r"
    [ -z "${VIRTBACK_B:-}" ] || tool_copy virtback-b vbfrag "$r"
    tool_copy virtnbdbackup vbfrag "$r"
  done
  echo; echo "== fragmented: 64 GiB, 131072 x 4 KiB extents"
  bench_table virtback:nbdcopy virtback:virtnbdbackup ${VIRTBACK_B:+virtback:virtback-b}
  vb_destroy_vm vbfrag
}

# Same 1 GiB (random) at the same offsets on an 8 GiB and a 4 TiB disk.
run_sparse () {
  local small=$VB_IMG_DIR/case-sp8.qcow2 huge=$VB_IMG_DIR/case-sp4t.qcow2 r i
  export BENCH_RESULTS=$BENCH_WORK/sparse-results.txt
  : >"$BENCH_RESULTS"
  bench_make_data
  mkdir -p "$VB_IMG_DIR"
  qemu-img create -q -f qcow2 "$small" 8G
  qemu-img create -q -f qcow2 "$huge" 4T
  for img in "$small" "$huge"; do
    for i in 0 1 2 3; do
      qemu-io -f qcow2 -c "write -q -s $BENCH_WORK/data/random-$i $((i * 2048))M 256M" "$img" ||
        bench_die "qemu-io failed"
    done
  done
  case_vm vbsp8 "$small"
  case_vm vbsp4t "$huge"
  for r in $(seq "$ROUNDS"); do
    tool_copy virtback-8G vbsp8 "$r"
    tool_copy virtback-4T vbsp4t "$r"
    [ -z "${VIRTBACK_B:-}" ] || tool_copy virtback-b-4T vbsp4t "$r"
    tool_copy virtnbdbackup-4T vbsp4t "$r"
  done
  echo; echo "== sparse: 1 GiB of data on an 8 GiB and on a 4 TiB disk"
  bench_table virtback-4T:virtback-8G virtback-4T:virtnbdbackup-4T ${VIRTBACK_B:+virtback-4T:virtback-b-4T}
  vb_destroy_vm vbsp8
  vb_destroy_vm vbsp4t
}

# 5% of 8 GiB dirty: 410 writes of 1 MiB at scattered offsets.
dirty_5pct () {
  local vm=$1 seed=$2 cmds
  cmds=$(python3 -c "
import random
random.seed($seed)
for off in random.sample(range(8192), 410): print(off)")
  for off in $cmds; do
    vsh qemu-monitor-command "$vm" --hmp "qemu-io -d sata0-0-0 \"write -q -P $((seed % 200 + 1)) ${off}M 1M\"" >/dev/null
  done
  vsh qemu-monitor-command "$vm" --hmp 'qemu-io -d sata0-0-0 "flush"' >/dev/null
  # The guest's 410 MiB sit dirty in the page cache; without this the timed
  # run races the kernel writing them back, and the figure measures that.
  sync
}

# tool_inc NAME ROUND: a full into a fresh directory, 5% dirtied, then the
# timed incremental.
tool_inc () {
  local name=$1 round=$2 prefix
  rm -rf "$BENCH_WORK/inc"
  case $name in
    virtback) "$VIRTBACK" backup -d vbinc -l full -n -o "$BENCH_WORK/inc" ;;
    virtnbdbackup) virtnbdbackup -d vbinc -l full -o "$BENCH_WORK/inc" ;;
  esac >>"$BENCH_WORK/bench.log" 2>&1 || bench_die "$name full failed"
  dirty_5pct vbinc "$round$RANDOM"
  case $name in
    virtback) bench_time virtback "$round" "$VIRTBACK" backup -d vbinc -l inc -n -o "$BENCH_WORK/inc" ;;
    virtnbdbackup) bench_time virtnbdbackup "$round" virtnbdbackup -d vbinc -l inc -n -o "$BENCH_WORK/inc" ;;
  esac
  rm -rf "$BENCH_WORK/inc"
  # Each tool deletes its own checkpoints at its next full; the other's must go.
  for prefix in $(vsh checkpoint-list vbinc --name 2>/dev/null | tac); do
    vsh checkpoint-delete vbinc "$prefix" >/dev/null 2>&1
  done
}

run_inc () {
  local img=$VB_IMG_DIR/case-inc.qcow2 r i
  export BENCH_RESULTS=$BENCH_WORK/inc-results.txt
  : >"$BENCH_RESULTS"
  bench_make_data
  qemu-img create -q -f qcow2 "$img" 8G
  for i in 0 1 2 3; do
    qemu-io -f qcow2 -c "write -q -s $BENCH_WORK/data/random-$i $((i * 2048))M 256M" "$img"
  done
  case_vm vbinc "$img"
  for r in $(seq "$ROUNDS"); do
    tool_inc virtback "$r"
    tool_inc virtnbdbackup "$r"
  done
  echo; echo "== inc: 5% of 8 GiB dirty in 1 MiB pieces"
  bench_table virtback:virtnbdbackup
  vb_destroy_vm vbinc
}

run_stdout () {
  local r
  export BENCH_RESULTS=$BENCH_WORK/stdout-results.txt
  : >"$BENCH_RESULTS"
  vsh domstate "$BENCH_VM" 2>/dev/null | grep -q running || bench_make_vm
  # virtnbdbackup -o - leaves its log, vmconfig and qcow.json in the
  # current directory: keep them out of the caller's (the checkout).
  mkdir -p "$BENCH_WORK/stdout-cwd"
  cd "$BENCH_WORK/stdout-cwd" || bench_die "cannot enter $BENCH_WORK/stdout-cwd"
  for r in $(seq "$ROUNDS"); do
    case_nbdcopy "$BENCH_VM" "$r"
    bench_time virtback-stdout "$r" sh -c "'$VIRTBACK' backup -d '$BENCH_VM' -l copy -n -o - > /dev/null"
    bench_time virtnbdbackup-stdout "$r" sh -c "virtnbdbackup -d '$BENCH_VM' -l copy -o - > /dev/null"
  done
  cd "$OLDPWD" || true
  echo; echo "== stdout: -o - of the 3 GiB benchmark disk into /dev/null"
  bench_table virtback-stdout:nbdcopy virtback-stdout:virtnbdbackup-stdout
}

echo "bench: cases: $CASES; $ROUNDS rounds; $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC')"
for c in $CASES; do
  "run_$c"
done
