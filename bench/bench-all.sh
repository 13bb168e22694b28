#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# bench/bench-all.sh: every benchmark case in one run, one after another,
# then all their tables side by side: the full copy (plain, lz4, zstd), the
# restore (plain and zstd), and the shape cases (fragmented, sparse, incremental, stdout).
# Each script interleaves its tools round by round; see bench/README.md.
# Usage: bench/bench-all.sh [-r ROUNDS]     (default 3)
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rounds=3
[ "${1:-}" = -r ] && rounds=$2
out=${BENCH_WORK:-/var/tmp/vbbench}/all
mkdir -p "$out"
"$here/bench-backup.sh" -r "$rounds" -z --zstd >"$out/backup.txt" 2>&1
"$here/bench-restore.sh" -r "$rounds" --zstd --reuse >"$out/restore.txt" 2>&1
"$here/bench-cases.sh" -r "$rounds" >"$out/cases.txt" 2>&1
for f in backup restore; do
  echo "== $f"
  sed -n '/^tool  /,/^Raw results/p' "$out/$f.txt" | sed '$d'
  echo
done
sed -n '/^== /,/^  round/p' "$out/cases.txt" | grep -v '^  round'
echo "Full outputs: $out/"
