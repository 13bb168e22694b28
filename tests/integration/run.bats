#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# virtback run: the jobs of a configuration over real domains, one missing;
# chains per domain, incrementals, new chains by age and keep-chains, the
# report, Prometheus metrics, --dry-run, prune by hand, a bad config.
# The tests build on each other: they share three VMs and one OUTPUT.

setup_file () {
  source "$BATS_TEST_DIRNAME/../lib.sh"
  vb_daemons_up
  export W=$BATS_FILE_TMPDIR
  export OUT=$W/out SCR
  SCR=$(mktemp -d /var/tmp/vbtest-xu-scratch.XXXXXX)
  chmod 755 "$SCR"
  local i
  for i in 1 2 3; do
    vb_make_vm xu-r$i 64M
    vb_guest_io xu-r$i sda "write -P 0x1$i 0 256k" "write -P 0x2$i 40M 64k"
  done
  # xu-r4 is named but never defined.
  cat > "$W/virtback.conf" <<EOF
[global]
output = $OUT          ; each domain into OUTPUT/DOMAIN
parallel = 2
report = $W/state/last-run.json
metrics = $W/prom/virtback.prom
scratchdir = $SCR

[job:nightly]
domains = xu-r1 xu-r[23] xu-r4
level = auto
keep-chains = 2

[job:short]
domains = xu-r1
full-interval = 1s
keep-chains = 2

[job:broken]
domains = xu-r2
include-disks = sdq

[job:hold]
domains = xu-r3
level = full

[job:hung]
domains = xu-r3 xu-r1
timeout = 5s
EOF
}

teardown_file () {
  local i
  [ -z "${QPID:-}" ] || kill -CONT "$QPID" 2>/dev/null || true
  for i in 1 2 3; do vb_destroy_vm xu-r$i; done
  rm -rf "$SCR"
}

setup () { source "$BATS_TEST_DIRNAME/../lib.sh"; }
# A test that failed with QEMU stopped must not leave it so for the next.
teardown () { [ -z "${QPID:-}" ] || kill -CONT "$QPID" 2>/dev/null || true; }

load backup_helpers

report () { python3 -c "import json,sys; r=json.load(open('$W/state/last-run.json')); $1"; }
status_of () { report "print([d for d in r['domains'] if d['domain']=='$1'][0]['$2'])"; }
chains () { ls "$OUT/$1"; }

# restore_matches VM CHAINDIR: the newest point of CHAINDIR equals the disk now.
restore_matches () {
  local d=$W/restore-$1
  rm -rf "$d"
  vb_snapshot_disk "$1" sda "$W/snap-$1.qcow2"
  "$VIRTBACK" restore -i "$2" -o "$d" >/dev/null 2>&1 || { echo "restore of $2 failed"; return 1; }
  vb_compare "$d/sda.qcow2" "$W/snap-$1.qcow2"
}

no_leftovers () {
  local i
  for i in 1 2 3; do vb_no_job xu-r$i || { echo "job left on xu-r$i"; return 1; }; done
  [ -z "$(ls -A "$SCR")" ] || { echo "scratch left:"; ls -la "$SCR"; return 1; }
  ! find "$OUT" -name '*.partial' -o -name '.prune-*' | grep . || return 1
  # no child backup outlives the run
  ! pgrep -f "virtback backup -d xu-r" || return 1
}

@test "R1: a run over 4 domains, 2 at a time, one missing: the others back up and restore; the exit and the report name the missing one" {
  vbk run -c "$W/virtback.conf" nightly
  [ "$status" -eq 1 ]
  [[ "$output" == *"virtback run: 1 of 4 failed: xu-r4 (missing)"* ]]
  [[ "$output" == *"xu-r4: missing: domain 'xu-r4' is not defined in libvirt"* ]]
  [ "$(report "print(r['failed'])")" = "['xu-r4']" ]
  [ "$(report "print(r['success'])")" = False ]
  [ "$(status_of xu-r4 status)" = missing ]
  for i in 1 2 3; do
    [ "$(status_of xu-r$i status)" = ok ]
    [ "$(status_of xu-r$i level)" = full ]
    [ "$(status_of xu-r$i error)" = None ]
    [ "$(status_of xu-r$i bytes)" -gt 300000 ]      # 256k + 64k of data
    [ "$(chains xu-r$i | wc -l)" -eq 1 ]
    c=$(chains xu-r$i)
    [ "$(status_of xu-r$i chain)" = "$OUT/xu-r$i/$c" ]
    restore_matches xu-r$i "$OUT/xu-r$i/$c"
  done
  [ "$(stat -c %a "$W/state/last-run.json")" = 600 ]
  # parallel = 2: at most two backups at once, and two did run at once
  report "
ev = sorted([(d['startedAfter'], 1) for d in r['domains'] if d['status'] == 'ok'] +
            [(d['startedAfter'] + d['seconds'], -1) for d in r['domains'] if d['status'] == 'ok'],
            key=lambda e: (e[0], e[1]))
n = top = 0
for _, step in ev:
    n += step; top = max(top, n)
print(top)" > "$W/overlap"
  [ "$(cat "$W/overlap")" -eq 2 ]
  no_leftovers
}

@test "R2: a second run goes incremental, into the same chain, and restores" {
  for i in 1 2 3; do vb_guest_io xu-r$i sda "write -P 0x3$i 20M 128k"; done
  before=$(chains xu-r1)
  vbk run -c "$W/virtback.conf" nightly
  [ "$status" -eq 1 ]
  for i in 1 2 3; do
    [ "$(status_of xu-r$i level)" = inc ]
    [ "$(status_of xu-r$i checkpoint)" = virtback.1 ]
    [ "$(status_of xu-r$i bytes)" -lt 300000 ]      # the 128k written, not the disk
    restore_matches xu-r$i "$OUT/xu-r$i/$(chains xu-r$i)"
  done
  [ "$(chains xu-r1)" = "$before" ]
  # the table on stdout names every domain
  [[ "$output" == *"xu-r2"*"nightly"*"ok"*"inc"* ]]
  no_leftovers
}

@test "R3: the metrics file parses as Prometheus text, per domain" {
  [ "$(stat -c %a "$W/prom/virtback.prom")" = 644 ]
  run /usr/bin/python3 - "$W/prom/virtback.prom" <<'EOF'
import sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
for n in ("virtback_last_success_timestamp_seconds", "virtback_last_run_success",
          "virtback_last_backup_bytes", "virtback_last_duration_seconds"):
    assert fams[n].type == "gauge", n
    assert fams[n].documentation, n
def val(n, d):
    s = [s.value for s in fams[n].samples if s.labels == {"domain": d}]
    return s[0] if s else None
for d in ("xu-r1", "xu-r2", "xu-r3"):
    assert val("virtback_last_run_success", d) == 1, d
    assert val("virtback_last_success_timestamp_seconds", d) > 1.7e9, d
    assert 0 < val("virtback_last_backup_bytes", d) < 300000, d
    assert val("virtback_last_duration_seconds", d) > 0, d
assert val("virtback_last_run_success", "xu-r4") == 0
assert val("virtback_last_success_timestamp_seconds", "xu-r4") is None
print("ok")
EOF
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$output" = ok ]
}

@test "R4: a domain whose backup fails is reported, keeps its last success time, and the others' metrics stay" {
  ts() { grep "^virtback_last_success_timestamp_seconds{domain=\"$1\"}" "$W/prom/virtback.prom"; }
  before2=$(ts xu-r2) before1=$(ts xu-r1)
  [ -n "$before2" ]
  chains_before=$(chains xu-r2)
  sleep 1                                          # a new success would show a new time
  vbk run -c "$W/virtback.conf" broken
  [ "$status" -eq 1 ]
  [[ "$output" == *"virtback run: 1 of 1 failed: xu-r2 (failed)"* ]]
  [ "$(status_of xu-r2 status)" = failed ]
  [[ "$(status_of xu-r2 error)" == *sdq* ]]
  [ "$(ts xu-r2)" = "$before2" ]
  [ "$(ts xu-r1)" = "$before1" ]
  grep -q '^virtback_last_run_success{domain="xu-r2"} 0$' "$W/prom/virtback.prom"
  grep -q '^virtback_last_run_success{domain="xu-r1"} 1$' "$W/prom/virtback.prom"
  [ "$(chains xu-r2)" = "$chains_before" ]
  no_leftovers
}

tree_sum () { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r md5sum; find . | sort); }

@test "R5: --dry-run prints domains, levels and chains to prune, and changes nothing" {
  sleep 1.1                                        # past job short's full-interval
  before=$(tree_sum "$W")
  vbk run -c "$W/virtback.conf" --dry-run
  [ "$status" -eq 1 ]                              # xu-r4 is still missing
  [[ "$output" == *"xu-r1 (job nightly): level auto into $OUT/xu-r1/$(chains xu-r1)"* ]]
  [[ "$output" == *"xu-r4 (job nightly): missing"* ]]
  [[ "$output" == *"prune: none"* ]]
  vbk run -c "$W/virtback.conf" --dry-run short
  [ "$status" -eq 0 ]
  [[ "$output" == *"xu-r1 (job short): level full into $OUT/xu-r1/"*"(a new chain)"* ]]
  [ "$(tree_sum "$W")" = "$before" ]
}

@test "R6: with a short full-interval new chains start, and keep-chains prunes the oldest" {
  first=$(chains xu-r1)
  vbk run -c "$W/virtback.conf" short
  [ "$status" -eq 0 ]
  [ "$(status_of xu-r1 level)" = full ]
  [ "$(chains xu-r1 | wc -l)" -eq 2 ]
  [ "$(chains xu-r1 | head -1)" = "$first" ]      # the old chain is kept beside it
  second=$(chains xu-r1 | tail -1)
  sleep 1.1
  vbk run -c "$W/virtback.conf" --dry-run short
  [[ "$output" == *"prune: $first"* ]]
  vb_guest_io xu-r1 sda "write -P 0x44 30M 64k"
  vbk run -c "$W/virtback.conf" short
  [ "$status" -eq 0 ]
  [ "$(chains xu-r1 | wc -l)" -eq 2 ]
  [ "$(chains xu-r1 | head -1)" = "$second" ]
  [ "$(report "print(r['domains'][0]['pruned'])")" = "['$first']" ]
  [ ! -e "$OUT/xu-r1/$first" ]
  restore_matches xu-r1 "$OUT/xu-r1/$(chains xu-r1 | tail -1)"
  no_leftovers
}

@test "R7: prune by hand: --dry-run, then the oldest go; a locked directory is refused in one line" {
  old=$(chains xu-r1 | head -1) cur=$(chains xu-r1 | tail -1)
  vbk prune -o "$OUT/xu-r1" --keep-chains 1 --dry-run
  [ "$status" -eq 0 ]
  [ "$output" = "would remove $OUT/xu-r1/$old" ]
  [ "$(chains xu-r1 | wc -l)" -eq 2 ]
  # a run (or prune) holding the directory's lock
  flock -n -o "$OUT/xu-r1" sleep 5 &
  holder=$!
  sleep 0.3
  vbk prune -o "$OUT/xu-r1" --keep-chains 1
  [ "$status" -eq 1 ]
  [ "$(printf '%s\n' "$output" | wc -l)" -eq 1 ]
  [[ "$output" == *"another virtback run or prune is working in $OUT/xu-r1"* ]]
  vbk run -c "$W/virtback.conf" short
  [ "$status" -eq 1 ]
  [[ "$output" == *"xu-r1: failed: another virtback run or prune is working in $OUT/xu-r1"* ]]
  kill "$holder"; wait "$holder" || true
  [ "$(chains xu-r1 | wc -l)" -eq 2 ]
  vbk prune -o "$OUT/xu-r1" --keep-chains 1
  [ "$status" -eq 0 ]
  [ "$output" = "removed $OUT/xu-r1/$old" ]
  [ "$(chains xu-r1)" = "$cur" ]
  vbk prune -o "$OUT/xu-r1" --keep-chains 1
  [ "$status" -eq 0 ]
  [[ "$output" == "nothing to prune"* ]]
  [ "$(chains xu-r1)" = "$cur" ]
}

@test "R8: a bad configuration fails in one line naming the file, the line and the key" {
  printf '[global]\noutput = %s\n\n[job:j]\ndomain = xu-r1\n' "$OUT" > "$W/bad.conf"
  vbk run -c "$W/bad.conf"
  [ "$status" -eq 2 ]
  [ "$output" = "virtback run: $W/bad.conf:5: [job:j] unknown key 'domain' (see virtback-run(1))" ]
  printf '[global]\noutput = %s\n[job:j]\ndomains = xu-r1\nkeep-chains = many\n' "$OUT" > "$W/bad.conf"
  vbk run -c "$W/bad.conf"
  [ "$status" -eq 2 ]
  [ "$(printf '%s\n' "$output" | wc -l)" -eq 1 ]
  [[ "$output" == *"$W/bad.conf:5: [job:j] key 'keep-chains': invalid number 'many'"* ]]
  printf '[global]\nparallel = 2\n[job:j]\ndomains = xu-r1\n' > "$W/bad.conf"
  vbk run -c "$W/bad.conf"
  [ "$status" -eq 2 ]
  [[ "$output" == "virtback run: $W/bad.conf: [global] output is missing"* ]]
}

@test "R9: SIGTERM ends the run: its backup child ends through its own cleanup, nothing is left, the report says so" {
  before=$(chains xu-r3)
  # QEMU stopped: the child's backup blocks in libvirt until it runs again,
  # so the signal surely comes while the backup is under way.
  QPID=$(cat /run/libvirt/qemu/xu-r3.pid)
  kill -STOP "$QPID"
  vb_bg_start "$W/bg" "$VIRTBACK" run -c "$W/virtback.conf" hold
  for i in $(seq 100); do
    child=$(pgrep -f "virtback backup -d xu-r3" || true)
    [ -z "$child" ] || break
    sleep 0.1
  done
  [ -n "$child" ]
  [ "$(ls "$OUT/xu-r3" | wc -l)" -eq 2 ]           # the new chain directory
  kill -TERM "$(cat "$W/bg/pid")"
  sleep 1                                          # the run passes SIGTERM on (it polls every 50 ms)
  kill -CONT "$QPID"
  rc=$(vb_bg_rc "$W/bg")
  cat "$W/bg/out"
  [ "$rc" -eq 1 ]
  grep -q "virtback run: xu-r3: failed: " "$W/bg/out"
  [ "$(status_of xu-r3 status)" = failed ]
  [ "$(status_of xu-r3 level)" = None ]
  [ "$(status_of xu-r3 chain)" = None ]           # its new chain was removed
  not kill -0 "$child" 2>/dev/null
  [ "$(chains xu-r3)" = "$before" ]                # the new chain is gone again
  no_leftovers
  grep -q '^virtback_last_run_success{domain="xu-r3"} 0$' "$W/prom/virtback.prom"
}

@test "R10: a hung domain is ended at the job's timeout while the others are backed up" {
  before=$(chains xu-r3)
  QPID=$(cat /run/libvirt/qemu/xu-r3.pid)
  kill -STOP "$QPID"
  vb_bg_start "$W/bg" "$VIRTBACK" run -c "$W/virtback.conf" hung
  for i in $(seq 100); do
    child=$(pgrep -f "virtback backup -d xu-r3" || true)
    [ -z "$child" ] || break
    sleep 0.1
  done
  [ -n "$child" ]
  sleep 7                                          # past the 5 s timeout: the run has sent SIGTERM
  kill -CONT "$QPID"
  rc=$(vb_bg_rc "$W/bg")
  cat "$W/bg/out"
  [ "$rc" -eq 1 ]
  [ "$(status_of xu-r3 status)" = failed ]
  [ "$(status_of xu-r3 error)" = "timed out after 5 s (the job's timeout)" ]
  [ "$(status_of xu-r1 status)" = ok ]
  [ "$(status_of xu-r1 level)" = inc ]
  [ "$(chains xu-r3)" = "$before" ]
  no_leftovers
}
