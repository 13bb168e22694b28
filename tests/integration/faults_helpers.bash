# SPDX-License-Identifier: GPL-3.0-or-later
# Helpers for faults.bats, on top of backup_helpers.bash and tests/lib.sh.
# A fault test starts a slow backup in the background, waits for a point of
# the run, injects the fault, then checks what is left and that the chain
# goes on.

# Per-test names and a scratch dir of its own (under /var/tmp: QEMU, user
# libvirt-qemu, must reach the socket), so leftovers are this test's own.
fl_setup () {
  load_lib
  VM=vbf-$BATS_TEST_NUMBER
  VM2=
  T=$BATS_TEST_TMPDIR
  B=$T/b
  SCRATCH=$(mktemp -d /var/tmp/vbtest-scratch.XXXXXX)
  chmod 755 "$SCRATCH"
  FL_PIDS=()
  FL_MOUNTS=()
}

fl_teardown () {
  local p m
  # runs of this test still going (our children only: pids get reused)
  for p in "${FL_PIDS[@]}"; do
    [ "$(awk '{print $4}' /proc/$p/stat 2>/dev/null)" = "$BASHPID" ] && kill -9 "$p"
  done
  for p in "${FL_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  # daemons of a private libvirt whose shell was killed (fl_private_libvirt)
  if [ -s "$T/ns.pids" ]; then
    for p in $(cat "$T/ns.pids"); do
      case "$(tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null)" in
        *vbf-libvirtd.pid*|*vbf-virtlogd.pid*) kill "$p" ;;
      esac
    done
    # and the QEMU that daemon started for this test's VM
    for p in $(pgrep -f -- "-name guest=$VM,"); do kill "$p"; done
  fi
  vb_destroy_vm "$VM"
  [ -z "$VM2" ] || vb_destroy_vm "$VM2"
  for m in "${FL_MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" || true; done
  rm -rf "$SCRATCH"
}

# fl_tmpfs DIR SIZE: a small filesystem at DIR, unmounted in teardown.
fl_tmpfs () {
  mkdir -p "$1" && mount -t tmpfs -o "size=$2" tmpfs "$1" && FL_MOUNTS+=("$1")
}

# Bytes in the run logs of DIR: log names have one-second resolution, so two
# runs in the same second append to one file; growth marks a new run.
fl_logbytes () { cat "$1"/backup.*.log 2>/dev/null | wc -c; }

# fl_bg LEVEL DIR [OPTIONS...]: a backup of $VM slowed down (4 KiB reads,
# one in flight) so that a fault lands mid-copy.  Its pid is in FL_PID,
# its stderr in $T/bg.err.  FL_NLOGS is the log bytes before it.
fl_bg () {
  local level=$1 dir=$2
  shift 2
  FL_NLOGS=$(fl_logbytes "$dir")
  "$VIRTBACK" backup -S "$SCRATCH" -d "${FL_DOM:-$VM}" -o "$dir" -l "$level" -n \
    --request-size 4096 --inflight 1 "$@" 2>"$T/bg.err" &
  FL_PID=$!
  FL_PIDS+=("$FL_PID")
}

# fl_wait_for POINT DIR: wait for a point of the run started by fl_bg.
#   early: it wrote to its log file (checks passed, no job yet)
#   mid:   a data file is being written (4 MiB in its .partial)
fl_wait_for () {
  local point=$1 dir=$2 i n s
  for i in $(seq 600); do
    kill -0 "$FL_PID" 2>/dev/null || { echo "run ended before '$point'"; cat "$T/bg.err"; return 1; }
    case $point in
      early)
        n=$(fl_logbytes "$dir")
        [ "$n" -gt "$FL_NLOGS" ] && return 0 ;;
      mid)
        s=$(stat -c %s "$dir"/*.partial 2>/dev/null | sort -n | tail -1)
        [ "${s:-0}" -ge 4194304 ] && return 0 ;;
    esac
    sleep 0.05
  done
  echo "timed out waiting for '$point'"
  return 1
}

# fl_reap: wait for the background run; its exit status goes in FL_ST and
# its stderr in $output (shown if the test fails).
fl_reap () {
  FL_ST=0
  wait "$FL_PID" || FL_ST=$?
  output=$(cat "$T/bg.err")
  echo "background run: status $FL_ST"
  echo "$output"
}

# The one error line of a failed run.
fl_error_line () { printf '%s\n' "$output" | grep '^virtback backup:' | tail -1; }

fl_cpt () { cat "$1/${2:-$VM}.cpt" 2>/dev/null; }

# No data or partial file of a run that did not complete.
fl_no_data () {
  local dir=$1 pat=${2:-*}
  if ls "$dir"/$pat.data "$dir"/*.partial 2>/dev/null | grep .; then
    echo "data or partial file left in $dir"
    return 1
  fi
}

fl_verify () {
  run "$VIRTBACK" verify -i "$1"
  echo "verify $1: status $status"
  echo "$output"
  [ "$status" -eq 0 ]
}

# fl_restore_equals DIR [DOMAIN]: the newest point of DIR, restored by
# virtback, equals the disk sda of the domain now.
fl_restore_equals () {
  local dir=$1 dom=${2:-$VM} out snap
  out=$(mktemp -d "$T/r.XXXXXX")
  snap=$out.snap.qcow2
  vb_snapshot_disk "$dom" sda "$snap" || return 1
  "$VIRTBACK" restore -i "$dir" -o "$out/img" || { echo "restore of $dir failed"; return 1; }
  vb_compare "$snap" "$out/img/sda.qcow2" ||
    { echo "restore of $dir differs from the disk of $dom"; qemu-img compare -U "$snap" "$out/img/sda.qcow2"; return 1; }
  rm -rf "$out" "$snap"
}

# The data file of an inc names its parent checkpoint in its header.
fl_parent_is () { grep -a -q "\"parentCheckpoint\": \"$2\"" "$1"; }

# ---- a libvirtd of our own ----
# Restarting the host's libvirtd would break every other user of it (other
# test files, other VMs).  fl_private_libvirt runs a function in a new mount
# namespace where tmpfs hides /run/libvirt, /etc/libvirt/qemu and
# /var/lib/libvirt/qemu, with a virtlogd and a libvirtd of its own: the same
# qemu:///system URI reaches that daemon, which can be killed and started
# again without touching the host's.

FL_NS_LIBVIRTD_PID=/run/libvirt/vbf-libvirtd.pid
FL_NS_VIRTLOGD_PID=/run/libvirt/vbf-virtlogd.pid

# fl_private_libvirt FUNCTION: runs FUNCTION there; its status is returned.
# The variables the function needs are exported by the caller.
fl_private_libvirt () {
  FL_OUTER_NS=$(readlink /proc/self/ns/mnt) FL_FUNC=$1 FL_HELPERS=$BATS_TEST_DIRNAME \
    unshare -m --propagation private bash -c '
      source "$FL_HELPERS/backup_helpers.bash"
      source "$FL_HELPERS/faults_helpers.bash"
      source "$FL_HELPERS/../lib.sh"
      fl_ns_main "$FL_FUNC"'
}

fl_ns_libvirtd_start () {
  libvirtd -d -p "$FL_NS_LIBVIRTD_PID" || return 1
  local i
  for i in $(seq 100); do
    virsh -c "$VB_URI" version >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "private libvirtd did not answer"
  return 1
}

# fl_ns_kill PIDFILE SIGNAL: end a daemon of ours and wait until it is gone.
fl_ns_kill () {
  local pid i
  pid=$(cat "$1" 2>/dev/null) || return 0
  kill -"$2" "$pid" 2>/dev/null || return 0
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null
}

fl_ns_cleanup () {
  vb_destroy_vm "$VM" >/dev/null 2>&1
  fl_ns_kill "$FL_NS_LIBVIRTD_PID" TERM
  fl_ns_kill "$FL_NS_VIRTLOGD_PID" TERM
  rm -f "$T/ns.pids"
}

fl_ns_main () {
  # Never mount over the host's directories: only in a namespace of our own.
  if [ -z "$FL_OUTER_NS" ] || [ "$(readlink /proc/self/ns/mnt)" = "$FL_OUTER_NS" ]; then
    echo "not in a private mount namespace: refusing to mount"
    return 1
  fi
  mount -t tmpfs -o mode=0755 tmpfs /run/libvirt &&
    mount -t tmpfs -o mode=0755 tmpfs /etc/libvirt/qemu &&
    mount -t tmpfs -o mode=0750 tmpfs /var/lib/libvirt/qemu &&
    chown libvirt-qemu:libvirt-qemu /var/lib/libvirt/qemu || return 1
  trap fl_ns_cleanup EXIT
  virtlogd -d -p "$FL_NS_VIRTLOGD_PID" && fl_ns_libvirtd_start || return 1
  # for the teardown outside, should this shell be killed
  cat "$FL_NS_VIRTLOGD_PID" "$FL_NS_LIBVIRTD_PID" > "$T/ns.pids"
  "$1"
}

# fail MSG: for functions run outside bats' checks (in the namespace).
fl_fail () { echo "FAILED: $*"; exit 1; }
