#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# bench/bench-ssh-streams.sh: whether replication over ssh would gain from more than one ssh
# connection.  1.5 GiB of random bytes (the replicate benchmark's data size) are sent into
# `cat >/dev/null` in the standby namespace of tests/integration/replica_hosts.bash, ROUNDS
# times: through one ssh session, and split in halves over two sessions at once, both with
# the cipher virtback prefers.  Two sessions no faster than one mean that the machine's cores,
# not one ssh process, bound a copy that ssh encrypts.
#
# Usage: bench/bench-ssh-streams.sh [-r ROUNDS]   (default 3; needs root, sshd)
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/tests/lib.sh"
. "$ROOT/tests/integration/replica_hosts.bash"
ROUNDS=3
[ "${1:-}" = -r ] && ROUNDS=$2
WORK=${BENCH_WORK:-/var/tmp/xpbench}
BLOB=$WORK/ssh-streams.blob
cleanup () { xp_hosts_down "$WORK/ssh-hosts"; rm -rf "$BLOB" "$WORK/ssh-hosts"; }
trap cleanup EXIT
mkdir -p "$WORK"
xp_hosts_up "$WORK/ssh-hosts" >/dev/null 2>&1 || { echo "bench: the standby namespace does not come up" >&2; exit 1; }
head -c 1536M /dev/urandom >"$BLOB"
S="$XP_RSH -o Ciphers=aes128-gcm@openssh.com -p $XP_PORT root@$XP_IP"
ms () { date +%s%N | cut -c1-13; }
echo "load before: $(uptime)"
for r in $(seq "$ROUNDS"); do
  t0=$(ms); $S 'cat >/dev/null' <"$BLOB"; t1=$(ms)
  dd if="$BLOB" bs=1M count=768 status=none | $S 'cat >/dev/null' &
  dd if="$BLOB" bs=1M skip=768 status=none | $S 'cat >/dev/null' &
  wait; t2=$(ms)
  echo "round $r: one ssh session $((t1 - t0)) ms, two sessions at once $((t2 - t1)) ms"
done
