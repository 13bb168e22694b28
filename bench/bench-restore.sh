#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# bench/bench-restore.sh: time restoring the benchmark VM's 3 GiB thin full
# backup (8 GiB disk, see bench-backup.sh) into a fresh qcow2 image, with
# three tools interleaved over several rounds in one run:
#   nbdcopy         the same data, from a sparse raw copy of the disk, into a
#                   fresh qcow2 served by qemu-nbd (the floor: QEMU's qcow2
#                   write path with no stream format to parse)
#   virtback        build/virtback restore -i BACKUP -o OUT
#   virtnbdrestore  virtnbdrestore -i BACKUP -o OUT
# Each restore is checked once with qemu-img compare against the VM's disk.
# It prints medians, peak RSS (of the tool and the qemu-nbd it starts) and
# the ratios virtback/nbdcopy and virtback/virtnbdrestore.
#
# Usage: bench/bench-restore.sh [-r ROUNDS] [-z] [--zstd] [--reuse] [--source TOOL]
#   -r N           rounds (default 5)
#   -z             also restore an lz4-compressed backup (-z) with both tools
#   --zstd         also restore a zstd backup (virtback only: the peer
#                  cannot read it)
#   --reuse        keep the running vbbench VM instead of rebuilding it
#   --source TOOL  which tool writes the backup to restore: virtback
#                  (default when it works) or virtnbdbackup
set -u
BENCH_LOG=${BENCH_WORK:-/var/tmp/vbbench}/bench-restore.log
. "$(dirname "${BASH_SOURCE[0]}")/lib-bench.sh"

ROUNDS=5 LZ4=0 ZSTD=0 REUSE=0 SOURCE=
while [ $# -gt 0 ]; do
  case $1 in
    -r) ROUNDS=$2; shift ;;
    -z) LZ4=1 ;;
    --zstd) ZSTD=1 ;;
    --reuse) REUSE=1 ;;
    --source) SOURCE=$2; shift ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) bench_die "unknown option $1 (see --help)" ;;
  esac
  shift
done

bench_check_tools virtnbdrestore
mkdir -p "$BENCH_WORK"
export BENCH_RESULTS=$BENCH_WORK/restore-results.txt
: >"$BENCH_RESULTS"
: >"$BENCH_LOG"

bench_vm_ready "$REUSE"

# make_backup DIR [-z]: one copy-level backup of the VM, by $SOURCE.
make_backup () {
  local dir=$1
  shift
  rm -rf "$dir" && mkdir -p "$dir"
  case $SOURCE in
    virtback) "$VIRTBACK" backup -d "$BENCH_VM" -l copy -n -o "$dir" "$@" ;;
    virtnbdbackup) virtnbdbackup -d "$BENCH_VM" -l copy -n -o "$dir" "$@" ;;
  esac >>"$BENCH_LOG" 2>&1
  local rc=$?
  bench_no_stale_job
  return $rc
}

if [ -z "$SOURCE" ]; then
  SOURCE=virtback
  if ! make_backup "$BENCH_WORK/backup"; then
    echo "bench: virtback backup failed (see $BENCH_LOG); restoring a virtnbdbackup backup"
    SOURCE=virtnbdbackup
    make_backup "$BENCH_WORK/backup" || bench_die "virtnbdbackup failed, see $BENCH_LOG"
  fi
else
  make_backup "$BENCH_WORK/backup" || bench_die "$SOURCE backup failed, see $BENCH_LOG"
fi
if [ "$LZ4" = 1 ]; then
  make_backup "$BENCH_WORK/backup-z" -z || bench_die "$SOURCE -z backup failed"
fi
if [ "$ZSTD" = 1 ]; then
  [ "$SOURCE" = virtback ] || bench_die "--zstd needs backups written by virtback"
  make_backup "$BENCH_WORK/backup-zstd" --compress-method zstd -z 3 ||
    bench_die "virtback zstd backup failed"
fi

# The nbdcopy source: the disk as a sparse raw file, read from the backup
# export like any backup, so nbdcopy sees the same extents.
rm -f "$BENCH_WORK/disk.raw"
bench_job_begin || bench_die "backup-begin failed"
nbdcopy "$BENCH_NBD" "$BENCH_WORK/disk.raw" || bench_die "nbdcopy of the export failed"
bench_job_end

OUT=$BENCH_WORK/restore-out
fresh_out () { rm -rf "$OUT" && mkdir -p "$OUT"; }

# check NAME: compare the restored image with the VM's disk (first round).
check () {
  local img
  img=$(find "$OUT" -name '*.qcow2' | head -1)
  if [ -z "$img" ]; then
    echo "  CHECK $1: no qcow2 image in $OUT"
  elif qemu-img compare -U -q "$img" "$BENCH_DISK"; then
    echo "  check $1: $(basename "$img") is identical to the VM's disk"
  else
    echo "  CHECK $1: $(basename "$img") DIFFERS from the VM's disk"
  fi
}

# The baseline: nbdcopy starts qemu-nbd on a fresh qcow2 by socket
# activation, with the options virtnbdrestore gives it, and stops it at the
# end, so server start, flush and exit are inside the time as for the tools.
# A fresh qcow2 reads as zero, so holes are skipped, not written as zeroes
# (writing them costs 5 s here: 14.5 s against 9.3 s).
nbdcopy_restore () {
  qemu-img create -q -f qcow2 "$OUT/sda.qcow2" 8G &&
    nbdcopy --flush --destination-is-zero "$BENCH_WORK/disk.raw" -- \
      [ qemu-nbd --discard=unmap -f qcow2 "$OUT/sda.qcow2" ]
}

echo "bench: $ROUNDS rounds, restoring a $SOURCE copy backup of $BENCH_VM, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "bench: code $(bench_code_version), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench: backup $(du -sh --apparent-size "$BENCH_WORK/backup" | cut -f1)$( [ "$LZ4" = 1 ] &&
  echo ", -z backup $(du -sh --apparent-size "$BENCH_WORK/backup-z" | cut -f1)")"
for r in $(seq 1 "$ROUNDS"); do
  fresh_out
  bench_time nbdcopy "$r" bash -c "$(declare -f nbdcopy_restore); OUT=$OUT BENCH_WORK=$BENCH_WORK nbdcopy_restore"
  [ "$r" = 1 ] && check nbdcopy
  fresh_out
  bench_time virtback "$r" "$VIRTBACK" restore -i "$BENCH_WORK/backup" -o "$OUT"
  [ "$r" = 1 ] && check virtback
  fresh_out
  bench_time virtnbdrestore "$r" virtnbdrestore -n -i "$BENCH_WORK/backup" -o "$OUT" -L "$BENCH_WORK/virtnbdrestore.log"
  [ "$r" = 1 ] && check virtnbdrestore
  if [ "$LZ4" = 1 ]; then
    fresh_out
    bench_time virtback-z "$r" "$VIRTBACK" restore -i "$BENCH_WORK/backup-z" -o "$OUT"
    [ "$r" = 1 ] && check virtback-z
    fresh_out
    bench_time virtnbdrestore-z "$r" virtnbdrestore -n -i "$BENCH_WORK/backup-z" -o "$OUT" -L "$BENCH_WORK/virtnbdrestore.log"
    [ "$r" = 1 ] && check virtnbdrestore-z
  fi
  if [ "$ZSTD" = 1 ]; then
    fresh_out
    bench_time virtback-zstd "$r" "$VIRTBACK" restore -i "$BENCH_WORK/backup-zstd" -o "$OUT"
    [ "$r" = 1 ] && check virtback-zstd
  fi
done
rm -rf "$OUT"

echo
echo "Medians over $ROUNDS rounds (seconds: the command alone, and until its data is synced):"
pairs=(virtback:nbdcopy virtback:virtnbdrestore)
[ "$LZ4" = 1 ] && pairs+=(virtback-z:nbdcopy virtback-z:virtnbdrestore-z)
[ "$ZSTD" = 1 ] && pairs+=(virtback-zstd:nbdcopy virtback-zstd:virtback)
bench_table "${pairs[@]}"
if grep -q ' [1-9][0-9]*$' "$BENCH_RESULTS"; then
  echo
  echo "Some runs failed; their output is in $BENCH_LOG"
fi
echo "Raw results: $BENCH_RESULTS"
