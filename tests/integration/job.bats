#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# virtback job against a real virtback serve and a firmware-only VM: the
# transfer URLs read through curl (Range reads of the extents) equal the
# disk at the job's start; finish leaves nothing; an inc's dirty extents
# rebuild the disk; backup directories and the job chain follow each other
# (restores compare); expired jobs are reaped; failed starts leave nothing.
# The tests run in order and share the VM, serve and the copies.

setup_file () {
  source "$BATS_TEST_DIRNAME/../lib.sh"
  vb_daemons_up
  export F=$BATS_FILE_TMPDIR VM=xojob PORT=54341
  export CTL=$F/ctl.sock BASE=http://127.0.0.1:54341
  # sda and sdb carry checkpoints; sdc is raw, which a job leaves out.
  vb_make_vm "$VM" 64M 3 "" sdc
  export UUID=$(vsh domuuid "$VM")
  rm -f "/var/lib/virtback/jobs/$UUID.virtback.json"
  "$VIRTBACK" serve --listen 127.0.0.1:$PORT --control-socket "$CTL" \
    >"$F/url" 2>"$F/serve.log" 3>&- &
  echo $! >"$F/serve.pid"
  for i in $(seq 100); do [ -s "$F/url" ] && break; sleep 0.05; done
  [ "$(cat "$F/url")" = "$BASE" ]
}

teardown_file () {
  source "$BATS_TEST_DIRNAME/../lib.sh"
  for id in $("$VIRTBACK" job list --json | jq -r ".[] | select(.domain == \"$VM\") | .id"); do
    "$VIRTBACK" job finish "$id" || true
  done
  vb_destroy_vm "$VM"
  rm -f "/var/lib/virtback/jobs/$UUID.virtback.json"
  kill "$(cat "$F/serve.pid")" 2>/dev/null || true
}

setup () {
  source "$BATS_TEST_DIRNAME/../lib.sh"
}

jstart () {
  "$VIRTBACK" job start -d "$VM" --json --no-freeze --control-socket "$CTL" \
    --base-url "$BASE" "$@"
}

ctl_code () { curl -s -o /dev/null -w '%{http_code}' --unix-socket "$CTL" "http://localhost/tickets/$1"; }

# read_ranges URL OUT FILTER: GET every extent FILTER (jq) selects from
# URL/extents..., one Range request each, into OUT at its offset.
read_ranges () {
  local url=$1 out=$2 ext=$3 sel=$4 s l
  curl -sf "$url/extents$ext" | jq -r ".[] | select($sel) | \"\(.start) \(.length)\"" |
    while read -r s l; do
      curl -sf -r "$s-$((s + l - 1))" "$url" |
        dd of="$out" bs=1M seek="$s" oflag=seek_bytes conv=notrunc status=none
    done
}

# fetch_full URL OUT SIZE: a sparse raw copy, reading only the data extents.
fetch_full () {
  truncate -s "$3" "$2"
  read_ranges "$1" "$2" "" '.zero == false'
}

apply_dirty () { read_ranges "$1" "$2" "?context=dirty" '.dirty == true'; }

@test "job start -l full: the JSON, a private export, and curl reads the disk as it was at the start" {
  vb_guest_io "$VM" sda 'write -P 0x41 1M 2M' 'write -P 0x42 40M 512K'
  vb_guest_io "$VM" sdb 'write -P 0x4b 7M 1M'
  vb_snapshot_disk "$VM" sda "$F/s0.qcow2"
  vb_snapshot_disk "$VM" sdb "$F/s0b.qcow2"
  jstart -l full >"$F/j1.json"
  jq -e '.checkpoint == "virtback.0" and .parent == null and (.id | test("^[0-9a-f]{16}$"))
         and (.disks | keys) == ["sda", "sdb"] and .disks.sda.size == 67108864
         and .disks.sda.transfer_url != .disks.sdb.transfer_url' "$F/j1.json"
  url=$(jq -r .disks.sda.transfer_url "$F/j1.json")
  [[ "$url" =~ ^$BASE/images/[0-9a-f]{32}$ ]]
  id=$(jq -r .id "$F/j1.json")
  [ "$(stat -c '%a %G' "/var/tmp/virtback-job.$id")" = "770 libvirt-qemu" ]
  [ "$(stat -c %a "/run/virtback/jobs/$id.json")" = 600 ]
  [ "$(ctl_code "${url##*/}")" = 200 ]
  # The guest writes on; the job still serves the disk of its start.
  vb_guest_io "$VM" sda 'write -P 0x55 2M 1M'
  fetch_full "$url" "$F/client.raw" 67108864
  vb_compare "$F/client.raw" "$F/s0.qcow2"
  fetch_full "$(jq -r .disks.sdb.transfer_url "$F/j1.json")" "$F/clientb.raw" 67108864
  vb_compare "$F/clientb.raw" "$F/s0b.qcow2"
  "$VIRTBACK" job list | grep -q "^$id $VM full virtback.0 "
  # A second job is refused before a full could touch the checkpoints.
  cp0=$(vsh checkpoint-dumpxml "$VM" virtback.0 | grep creationTime)
  run jstart -l full
  [ "$status" -eq 1 ]
  [ "${#lines[@]}" -eq 1 ]
  [[ "$output" == *"domain '$VM' is busy with another job"* ]]
  [ "$(vsh checkpoint-dumpxml "$VM" virtback.0 | grep creationTime)" = "$cp0" ]
  [ "$(ls /run/virtback/jobs)" = "$id.json" ]
}

@test "job finish removes the tickets, the libvirt job and the private directory, and records the checkpoint" {
  id=$(jq -r .id "$F/j1.json")
  url=$(jq -r .disks.sda.transfer_url "$F/j1.json")
  "$VIRTBACK" job finish "$id"
  [ "$(ctl_code "${url##*/}")" = 404 ]
  vb_no_job "$VM"
  [ ! -e "/var/tmp/virtback-job.$id" ]
  [ ! -e "/run/virtback/jobs/$id.json" ]
  [ "$(vb_checkpoints "$VM")" = virtback.0 ]
  jq -e '[.checkpoints[].name] == ["virtback.0"]' "/var/lib/virtback/jobs/$UUID.virtback.json"
  run "$VIRTBACK" job finish "$id"
  [ "$status" -eq 1 ]
  [ "${#lines[@]}" -eq 1 ]
  [[ "$output" == *"there is no job $id"* ]]
}

@test "job start -l inc: dirty extents list the guest's writes; read onto the full copy they give the disk" {
  vb_guest_io "$VM" sda 'write -P 0x66 20M 1M'
  vb_snapshot_disk "$VM" sda "$F/s1.qcow2"
  jstart -l inc >"$F/j2.json"
  jq -e '.checkpoint == "virtback.1" and .parent == "virtback.0"' "$F/j2.json"
  url=$(jq -r .disks.sda.transfer_url "$F/j2.json")
  curl -sf "$url/extents?context=dirty" >"$F/dirty.json"
  # 2M (written during the full job) and 20M are dirty, and nothing else.
  jq -e '[.[] | select(.dirty) | [.start, .length]] == [[2097152, 1048576], [20971520, 1048576]]' "$F/dirty.json"
  apply_dirty "$url" "$F/client.raw"
  vb_compare "$F/client.raw" "$F/s1.qcow2"
  "$VIRTBACK" job finish "$(jq -r .id "$F/j2.json")"
  vb_no_job "$VM"
  jq -e '[.checkpoints[].name] == ["virtback.0", "virtback.1"]' "/var/lib/virtback/jobs/$UUID.virtback.json"
}

@test "a full backup breaks the job chain: the next inc job says so and leaves nothing" {
  "$VIRTBACK" backup -d "$VM" -l full -o "$F/bk" -n --no-freeze
  [ "$(vb_checkpoints "$VM")" = virtback.0 ]
  run jstart -l inc
  [ "$status" -eq 1 ]
  [ "${#lines[@]}" -eq 1 ]
  [[ "$output" == *"no checkpoint virtback.1"*"start a full job (-l full)"* ]]
  [ "$(vb_checkpoints "$VM")" = virtback.0 ]
  vb_no_job "$VM"
  [ -z "$("$VIRTBACK" job list)" ]
}

@test "an inc job --from a backup's checkpoint, onto that backup's restore, gives the disk" {
  vb_guest_io "$VM" sda 'write -P 0x77 30M 1M'
  vb_snapshot_disk "$VM" sda "$F/s2.qcow2"
  jstart -l inc --from virtback.0 >"$F/j3.json"
  jq -e '.checkpoint == "virtback.1" and .parent == "virtback.0"' "$F/j3.json"
  "$VIRTBACK" restore -i "$F/bk" -o "$F/r0" --format raw
  cp --sparse=always "$F/r0/sda.raw" "$F/client.raw"
  apply_dirty "$(jq -r .disks.sda.transfer_url "$F/j3.json")" "$F/client.raw"
  vb_compare "$F/client.raw" "$F/s2.qcow2"
  "$VIRTBACK" job finish "$(jq -r .id "$F/j3.json")"
  jq -e '[.checkpoints[].name] == ["virtback.0", "virtback.1"]' "/var/lib/virtback/jobs/$UUID.virtback.json"
}

@test "backup -l inc after a job covers the job's changes too, skips its checkpoint name, and restores exactly" {
  vb_guest_io "$VM" sda 'write -P 0x88 40M 1M'
  vb_snapshot_disk "$VM" sda "$F/s3.qcow2"
  "$VIRTBACK" backup -d "$VM" -l inc -o "$F/bk" -n --no-freeze
  jq -e '. == ["virtback.0", "virtback.2"]' "$F/bk/$VM.cpt"
  [ "$(vb_checkpoints "$VM" | tr '\n' ' ')" = "virtback.0 virtback.1 virtback.2 " ]
  "$VIRTBACK" restore -i "$F/bk" -o "$F/r1"
  vb_compare "$F/r1/sda.qcow2" "$F/s3.qcow2"
}

@test "an inc job after that backup goes on from the job chain, and its client's copy equals the disk" {
  vb_guest_io "$VM" sda 'write -P 0x99 50M 1M'
  vb_snapshot_disk "$VM" sda "$F/s4.qcow2"
  jstart -l inc >"$F/j4.json"
  jq -e '.checkpoint == "virtback.3" and .parent == "virtback.1"' "$F/j4.json"
  apply_dirty "$(jq -r .disks.sda.transfer_url "$F/j4.json")" "$F/client.raw"
  vb_compare "$F/client.raw" "$F/s4.qcow2"
  "$VIRTBACK" job finish "$(jq -r .id "$F/j4.json")"
  # And the backup directory goes on once more from its own point.
  "$VIRTBACK" backup -d "$VM" -l inc -o "$F/bk" -n --no-freeze
  jq -e '. == ["virtback.0", "virtback.2", "virtback.4"]' "$F/bk/$VM.cpt"
  "$VIRTBACK" restore -i "$F/bk" -o "$F/r2"
  vb_compare "$F/r2/sda.qcow2" "$F/s4.qcow2"
}

@test "a job whose timeout passed is ended by the next job start, and the next by job list" {
  before=$(vb_checkpoints "$VM")
  jstart -l inc --timeout 2 >"$F/j5.json"
  id5=$(jq -r .id "$F/j5.json")
  t5=$(jq -r .disks.sda.transfer_url "$F/j5.json")
  sleep 3
  jstart -l inc --timeout 2 >"$F/j6.json"
  id6=$(jq -r .id "$F/j6.json")
  [ ! -e "/run/virtback/jobs/$id5.json" ]
  [ ! -e "/var/tmp/virtback-job.$id5" ]
  [ "$(ctl_code "${t5##*/}")" = 404 ]
  # The expired job's checkpoint went; the new job's has its name.
  jq -e '.checkpoint == "virtback.5"' "$F/j5.json"
  jq -e '.checkpoint == "virtback.5"' "$F/j6.json"
  sleep 3
  [ -z "$("$VIRTBACK" job list)" ]
  vb_no_job "$VM"
  [ "$(vb_checkpoints "$VM")" = "$before" ]
  [ ! -e "/var/tmp/virtback-job.$id6" ]
  [ "$(ctl_code "$(jq -r .disks.sda.transfer_url "$F/j6.json" | sed 's|.*/||')")" = 404 ]
  jq -e '[.checkpoints[].name] == ["virtback.0", "virtback.1", "virtback.3"]' "/var/lib/virtback/jobs/$UUID.virtback.json"
}

@test "a job whose tickets a client extends (PATCH) outlives its own timeout, and ends with them" {
  before=$(vb_checkpoints "$VM")
  jstart -l inc --timeout 2 >"$F/j7.json"
  id7=$(jq -r .id "$F/j7.json")
  t7=$(jq -r .disks.sda.transfer_url "$F/j7.json")
  for tid in $(jq -r '.disks[].transfer_url | sub(".*/"; "")' "$F/j7.json"); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$CTL" -X PATCH \
          --data '{"timeout": 8}' "http://localhost/tickets/$tid")" = 200 ]
  done
  sleep 4
  # past the job's own 2 seconds: list keeps it, its export still reads
  "$VIRTBACK" job list --json | jq -e --arg id "$id7" 'any(.[]; .id == $id)'
  [ -e "/run/virtback/jobs/$id7.json" ]
  [ "$(curl -s -o /dev/null -w '%{http_code}' -r 0-4095 "$t7")" = 206 ]
  run vb_no_job "$VM"
  [ "$status" -ne 0 ]
  sleep 6
  # past the tickets' end: the next list ends it as any expired job
  [ -z "$("$VIRTBACK" job list)" ]
  [ ! -e "/run/virtback/jobs/$id7.json" ]
  vb_no_job "$VM"
  [ "$(ctl_code "${t7##*/}")" = 404 ]
  [ "$(vb_checkpoints "$VM")" = "$before" ]
}

@test "a failed start is one line, non-zero, and leaves nothing: no domain, no serve" {
  before=$(vb_checkpoints "$VM")
  run "$VIRTBACK" job start -d xo-missing -l full --control-socket "$CTL"
  [ "$status" -eq 1 ]
  [ "${#lines[@]}" -eq 1 ]
  [[ "$output" == *"domain 'xo-missing' does not exist"* ]]
  # Without serve a full must not delete the chain's checkpoints.
  run jstart -l full --control-socket "$F/none.sock"
  [ "$status" -eq 1 ]
  [ "${#lines[@]}" -eq 1 ]
  [[ "$output" == *"cannot reach virtback serve on $F/none.sock"*"start 'virtback serve'"* ]]
  [ "$(vb_checkpoints "$VM")" = "$before" ]
  vb_no_job "$VM"
  [ -z "$(ls /run/virtback/jobs)" ]
  [ -z "$(ls -d /var/tmp/virtback-job.* 2>/dev/null)" ]
  run "$VIRTBACK" job start -d "$VM" -l inc --from other.1 --control-socket "$CTL"
  [ "$status" -eq 1 ]
  [ "${#lines[@]}" -eq 1 ]
}

@test "a start killed with -9 halfway is cleaned up by the next job list" {
  before=$(vb_checkpoints "$VM")
  # exec: $! is virtback itself, not a subshell around it.
  (exec "$VIRTBACK" job start -d "$VM" -l inc --no-freeze --control-socket "$CTL" \
     >/dev/null 2>&1) &
  pid=$!
  for i in $(seq 1000); do
    compgen -G "/run/virtback/jobs/*.json" >/dev/null && break
    sleep 0.005
  done
  kill -9 "$pid"
  wait "$pid" || true
  rec=$(compgen -G "/run/virtback/jobs/*.json")
  cp "$rec" "$F/killed.json"
  # It died between its record and its end, the case this test is about.
  jq -e '.state == null' "$F/killed.json"
  id=$(jq -r .id "$F/killed.json")
  "$VIRTBACK" job list
  [ ! -e "$rec" ]
  [ ! -e "/var/tmp/virtback-job.$id" ]
  vb_no_job "$VM"
  [ "$(vb_checkpoints "$VM")" = "$before" ]
  for t in $(jq -r '.disks[].ticket' "$F/killed.json"); do [ "$(ctl_code "$t")" = 404 ]; done
}

@test "a full job starts a new chain for all: the backup directory's inc refuses, and so does a job chain a full backup replaced" {
  jstart -l full >"$F/j7.json"
  "$VIRTBACK" job finish "$(jq -r .id "$F/j7.json")"
  [ "$(vb_checkpoints "$VM")" = virtback.0 ]
  run "$VIRTBACK" backup -d "$VM" -l inc -o "$F/bk" -n --no-freeze
  [ "$status" -eq 1 ]
  [[ "${lines[-1]}" == *"checkpoint virtback.0 of domain '$VM' was made by another backup"* ]]
  "$VIRTBACK" backup -d "$VM" -l full -o "$F/bk2" -n --no-freeze
  run jstart -l inc
  [ "$status" -eq 1 ]
  [ "${#lines[@]}" -eq 1 ]
  [[ "$output" == *"checkpoint virtback.0 of domain '$VM' is not the one the job chain recorded"*"start a full job (-l full)"* ]]
  [ "$(vb_checkpoints "$VM")" = virtback.0 ]
  vb_no_job "$VM"
}
