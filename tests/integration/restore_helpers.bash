# SPDX-License-Identifier: GPL-3.0-or-later
# Helpers shared by the restore and compat bats files (on top of tests/lib.sh).

rb_load () {
  source "$BATS_TEST_DIRNAME/../lib.sh"
  vb_daemons_up
}

# Same content and the same virtual size.  Allocation is not compared:
# zeroing a range that an earlier backup filled leaves qcow2 zero clusters
# in the restore, where a qemu-img convert copy has unallocated ones.
rb_compare () {
  local a=$1 b=$2 sa sb
  sa=$(qemu-img info -U --output=json "$a" | jq '."virtual-size"')
  sb=$(qemu-img info -U --output=json "$b" | jq '."virtual-size"')
  [ "$sa" = "$sb" ] || { echo "virtual size $a: $sa, $b: $sb"; return 1; }
  qemu-img compare -U -q "$a" "$b" || { echo "content differs: $a $b"; qemu-img compare -U "$a" "$b"; return 1; }
}

# rb_restore_check DIR POINT SNAPFILES...: restore POINT of DIR ("" for the
# newest) and compare each restored disk with its snapshot; each SNAPFILE
# is named <disk>.<anything>.qcow2.
rb_restore_check () {
  local dir=$1 point=$2 snap d out
  shift 2
  out=$(mktemp -d "${BATS_TEST_TMPDIR:-/tmp}/r.XXXXXX")
  "$VIRTBACK" restore -i "$dir" -o "$out" ${point:+--until "$point"} || return 1
  for snap in "$@"; do
    d=$(basename "$snap")
    rb_compare "$snap" "$out/${d%%.*}.qcow2" || { echo "at point $point"; return 1; }
  done
  rm -rf "$out"
}

# rb_flip FILE OFFSET: invert the low bit of one byte in place.
rb_flip () {
  python3 - "$1" "$2" <<'PY'
import sys
path, off = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 1]))
PY
}

# rb_frame_at FILE KIND START: byte offset of the frame header "KIND START".
rb_frame_at () {
  grep -a -b -o "$2 $(printf '%016x' "$3")" "$1" | head -1 | cut -d: -f1
}

# Write <file>.chksum for every data file, as virtnbdbackup 2.x does.
rb_add_chksums () {
  local f
  for f in "$1"/*.data; do
    python3 -c 'import sys,zlib; sys.stdout.write(str(zlib.adler32(open(sys.argv[1],"rb").read())))' \
      "$f" > "$f.chksum"
  done
}

# The test's own TMPDIR (from its setup): the restore files run side by side in the suite,
# and one's socket directories in a shared /tmp read as another's leftovers.
rb_private_tmpdir () {
  export TMPDIR=$BATS_TEST_TMPDIR/tmp
  mkdir -p "$TMPDIR"
}

# Nothing that looks like a restored image in DIR, and no helper left running.
rb_no_image () {
  local dir=$1
  if ls "$dir" 2>/dev/null | grep -E '\.(qcow2|raw)(\.partial)?$'; then
    echo "image left in $dir"; return 1
  fi
  if [ "${TMPDIR:-}" != "$BATS_TEST_TMPDIR/tmp" ]; then
    echo "rb_no_image: the test's setup must call rb_private_tmpdir"; return 1
  fi
  if find "$TMPDIR" -maxdepth 1 -name 'virtback-restore.*' | grep -q .; then
    echo "socket directory left: $(ls -d "$TMPDIR"/virtback-restore.*)"; return 1
  fi
}

# The peer's backup: virtnbdbackup -d VM -l LEVEL -o DIR [more options].
rb_peer_backup () {
  local vm=$1 level=$2 dir=$3
  shift 3
  virtnbdbackup -U "$VB_URI" -d "$vm" -l "$level" -o "$dir" "$@" >"$dir.$level.log" 2>&1 ||
    { tail -20 "$dir.$level.log"; return 1; }
}
