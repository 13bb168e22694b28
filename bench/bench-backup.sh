#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# bench/bench-backup.sh: time a thin full backup of a running VM's 8 GiB disk
# holding 3 GiB (2 GiB random, 1 GiB text) with three tools, interleaved
# over several rounds in one run:
#   nbdcopy        the backup export copied to a sparse raw file (the floor:
#                  the same NBD reads with no format around them)
#   virtback       build/virtback backup -l copy
#   virtnbdbackup  virtnbdbackup -l copy
# It prints medians, peak RSS and the ratios virtback/nbdcopy and
# virtback/virtnbdbackup.  See bench/README.md.
#
# Usage: bench/bench-backup.sh [-r ROUNDS] [-z] [--only-z] [--zstd] [--reuse]
#   -r N      rounds (default 5)
#   -z        also time the lz4 variants (virtback -z, virtnbdbackup -z)
#   --only-z  time only nbdcopy and the lz4 variants
#   --zstd    also time virtback -z --compress-method zstd (no peer has it)
#   --reuse   keep the existing vbbench VM instead of rebuilding it
# With VIRTBACK_B=/path/to/another/virtback, the plain case also times that
# build ("virtback-b") in the same rounds, to compare two versions.
set -u
BENCH_LOG=${BENCH_WORK:-/var/tmp/vbbench}/bench-backup.log
. "$(dirname "${BASH_SOURCE[0]}")/lib-bench.sh"

ROUNDS=5 PLAIN=1 LZ4=0 ZSTD=0 REUSE=0
while [ $# -gt 0 ]; do
  case $1 in
    -r) ROUNDS=$2; shift ;;
    -z) LZ4=1 ;;
    --only-z) LZ4=1 PLAIN=0 ;;
    --zstd) ZSTD=1 ;;
    --reuse) REUSE=1 ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) bench_die "unknown option $1 (see --help)" ;;
  esac
  shift
done

bench_check_tools
[ -x "$VIRTBACK" ] || bench_die "$VIRTBACK is missing: ninja -C build"
mkdir -p "$BENCH_WORK"
export BENCH_RESULTS=$BENCH_WORK/backup-results.txt
: >"$BENCH_RESULTS"
: >"$BENCH_LOG"

bench_vm_ready "$REUSE"

run_nbdcopy () {
  rm -f "$BENCH_WORK/out.raw"
  bench_job_begin || { echo "bench: backup-begin failed" >&2; return 1; }
  bench_time nbdcopy "$1" nbdcopy "$BENCH_NBD" "$BENCH_WORK/out.raw"
  bench_job_end
  rm -f "$BENCH_WORK/out.raw"
}

# run_tool NAME ROUND CMD...: CMD writes into a fresh, empty $BENCH_WORK/out.
run_tool () {
  local name=$1 round=$2
  shift 2
  rm -rf "$BENCH_WORK/out"
  mkdir -p "$BENCH_WORK/out"
  bench_time "$name" "$round" "$@" -o "$BENCH_WORK/out"
  [ "$round" = 1 ] &&
    echo "          $name wrote $(du -sh --apparent-size "$BENCH_WORK/out" | cut -f1) ($(find "$BENCH_WORK/out" -name '*.data' | wc -l) data file)"
  bench_no_stale_job
  rm -rf "$BENCH_WORK/out"
}

echo "bench: $ROUNDS rounds, VM $BENCH_VM, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "bench: code $(bench_code_version), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench: virtback $("$VIRTBACK" --version 2>&1), $(virtnbdbackup -V 2>&1 | tail -1), $(nbdcopy --version | head -1)"
for r in $(seq 1 "$ROUNDS"); do
  run_nbdcopy "$r"
  if [ "$PLAIN" = 1 ]; then
    run_tool virtback "$r" "$VIRTBACK" backup -d "$BENCH_VM" -l copy -n
    [ -z "${VIRTBACK_B:-}" ] || run_tool virtback-b "$r" "$VIRTBACK_B" backup -d "$BENCH_VM" -l copy -n
    run_tool virtnbdbackup "$r" virtnbdbackup -d "$BENCH_VM" -l copy -n
  fi
  if [ "$LZ4" = 1 ]; then
    run_tool virtback-z "$r" "$VIRTBACK" backup -d "$BENCH_VM" -l copy -n -z
    run_tool virtnbdbackup-z "$r" virtnbdbackup -d "$BENCH_VM" -l copy -n -z
  fi
  if [ "$ZSTD" = 1 ]; then
    run_tool virtback-zstd "$r" "$VIRTBACK" backup -d "$BENCH_VM" -l copy -n -z --compress-method zstd
  fi
done

echo
echo "Medians over $ROUNDS rounds (seconds: the command alone, and until its data is synced):"
pairs=()
[ "$PLAIN" = 1 ] && pairs+=(virtback:nbdcopy virtback:virtnbdbackup ${VIRTBACK_B:+virtback:virtback-b})
[ "$LZ4" = 1 ] && pairs+=(virtback-z:nbdcopy virtback-z:virtnbdbackup-z)
[ "$ZSTD" = 1 ] && pairs+=(virtback-zstd:nbdcopy virtback-zstd:virtnbdbackup-z)
bench_table "${pairs[@]}"
if grep -q ' [1-9][0-9]*$' "$BENCH_RESULTS"; then
  echo
  echo "Some runs failed; their output is in $BENCH_LOG"
fi
echo "Raw results: $BENCH_RESULTS"
