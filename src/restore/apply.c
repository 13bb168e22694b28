/* apply.c: stream one data file into an NBD writer.  See internal.h.
 * The reader validates while we write; a problem found late in a file
 * (say a bad lz4 checksum) fails the restore, and the caller removes the
 * image, so nothing written before the problem is ever kept as good.
 * Compressed frames go through unpack.c, which decompresses on worker
 * threads, unless their pieces are too large for its buffers.  A raw
 * image (-t raw, or a raw disk saved whole) is copied by its extents. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "restore/internal.h"
#include "stream/stream.h"

/* Fill one lent buffer from the current data frame and submit the part
 * of it below LIMIT: bytes past a later shrink of the disk are read (so the
 * frame is still checked) but never written. */
static int
apply_piece (struct vb_nbd_writer *w, struct vb_reader *r,
             const struct vb_chain_file *f, uint64_t off, uint64_t left,
             uint64_t limit, size_t *done)
{
  size_t cap, want, fill = 0;
  char *buf = vb_nbd_writer_buffer (w, &cap);

  if (!buf)
    return -1;
  want = left < cap ? left : cap;
  while (fill < want) {
    ssize_t n = vb_reader_read (r, buf + fill, want - fill);

    if (n <= 0) {
      vb_nbd_writer_release (w, buf);
      if (n == 0)
        vb_set_error ("%s: data frame at disk offset %" PRIu64 " ended "
                      "early", f->name, off);
      return -1;
    }
    fill += n;
  }
  *done = fill;
  return vb_submit_below (w, buf, fill, off, limit);
}

static int
apply_data (struct vb_nbd_writer *w, struct vb_reader *r,
            const struct vb_chain_file *f, const struct vb_frame *fr,
            uint64_t limit)
{
  uint64_t off = fr->start, left = fr->length;
  char extra;
  ssize_t n;

  while (left > 0) {
    size_t done;

    if (__atomic_load_n (&vb_restore_stop, __ATOMIC_RELAXED)) {
      vb_set_error ("interrupted");
      return -1;
    }
    if (apply_piece (w, r, f, off, left, limit, &done) == -1)
      return -1;
    off += done;
    left -= done;
  }
  /* Lets the reader check the frame's end (terminator, lz4 end mark). */
  n = vb_reader_read (r, &extra, 1);
  if (n != 0) {
    if (n > 0)
      vb_set_error ("%s: data frame at file offset %" PRIu64 " is longer "
                    "than its header says", f->name, fr->file_offset);
    return -1;
  }
  return 0;
}

static int
apply_frames (struct vb_nbd_writer *w, struct vb_reader *r,
              struct vb_unpack *u, const struct vb_chain_file *f,
              bool skip_zero, uint64_t limit, struct vb_apply_stats *st)
{
  struct vb_frame fr;
  int n;

  while ((n = vb_reader_next (r, &fr)) == 1) {
    if (__atomic_load_n (&vb_restore_stop, __ATOMIC_RELAXED)) {
      vb_set_error ("interrupted");
      return -1;
    }
    if (fr.kind == VB_FRAME_DATA) {
      int rc = u ? vb_unpack_frame (u, r, &fr) : 1;

      if (rc == 1)
        rc = apply_data (w, r, f, &fr, limit);
      if (rc == -1)
        return -1;
      st->data += vb_below (fr.start, fr.length, limit);   /* written */
    }
    else if (fr.kind == VB_FRAME_ZERO && !skip_zero && fr.start < limit) {
      uint64_t len = vb_below (fr.start, fr.length, limit);

      if (vb_nbd_writer_zero (w, fr.start, len) == -1) {
        vb_prefix_error ("%s: zero frame at file offset %" PRIu64, f->name,
                         fr.file_offset);
        return -1;
      }
      st->zero += len;
    }
  }
  return n;
}

/* The .chksum covers the whole file, so it is checked by a thread reading
 * the file alongside the writes rather than in a second pass after them. */
struct sumcheck {
  const struct vb_chain_file *f;
  int ret;
  char msg[1024];
};

static void *
sum_thread (void *opaque)
{
  struct sumcheck *sc = opaque;

  sc->ret = vb_check_chksum (sc->f->path, sc->f->name);
  if (sc->ret == -1)
    snprintf (sc->msg, sizeof sc->msg, "%s", vb_get_error ());
  return NULL;
}

static int
apply_stream (struct vb_nbd_writer *w, const struct vb_chain_file *f,
              bool skip_zero, uint64_t limit, struct vb_apply_stats *st)
{
  CLEANUP_CLOSE int fd = open (f->path, O_RDONLY | O_CLOEXEC);
  struct vb_reader *r;
  struct vb_unpack *u = NULL;
  enum vb_comp_method m;
  int ret = -1;

  if (fd == -1) {
    vb_set_error_errno (errno, "%s", f->path);
    return -1;
  }
  r = vb_reader_open (fd, f->name);
  if (!r)
    return -1;
  if (!vb_reader_compression (r, &m) ||
      (u = vb_unpack_new (w, m, f->name, limit)))
    ret = apply_frames (w, r, u, f, skip_zero, limit, st);
  if (ret == -1 && u)
    vb_unpack_earlier_error (u);
  if (ret == 0 && u)
    ret = vb_unpack_finish (u);
  vb_unpack_free (u);
  vb_reader_close (r);
  /* The next file may overwrite what this one wrote: keep the order. */
  if (ret == 0)
    ret = vb_nbd_writer_drain (w);
  return ret;
}

static int
zero_range (struct vb_nbd_writer *w, uint64_t off, uint64_t len,
            bool skip_zero, struct vb_apply_stats *st)
{
  if (skip_zero || len == 0)
    return 0;
  st->zero += len;
  return vb_nbd_writer_zero (w, off, len);
}

static bool
all_zero (const char *buf, size_t len)
{
  return len == 0 || (buf[0] == 0 && memcmp (buf, buf + 1, len - 1) == 0);
}

/* LEN bytes of raw image F at OFF, one writer buffer at a time; a buffer
 * of zeros (a raw image copied without holes) is written as zeros. */
static int
copy_range (struct vb_nbd_writer *w, int fd, const struct vb_chain_file *f,
            uint64_t off, uint64_t len, bool skip_zero,
            struct vb_apply_stats *st)
{
  while (len > 0) {
    size_t cap, n, fill = 0;
    char *buf;

    if (__atomic_load_n (&vb_restore_stop, __ATOMIC_RELAXED)) {
      vb_set_error ("interrupted");
      return -1;
    }
    if (!(buf = vb_nbd_writer_buffer (w, &cap)))
      return -1;
    n = len < cap ? len : cap;
    while (fill < n) {
      ssize_t r = pread (fd, buf + fill, n - fill, off + fill);

      if (r <= 0) {
        vb_nbd_writer_release (w, buf);
        vb_set_error_errno (r ? errno : EIO, "%s: read at offset %" PRIu64,
                            f->name, off + fill);
        return -1;
      }
      fill += r;
    }
    if (all_zero (buf, n)) {
      vb_nbd_writer_release (w, buf);
      if (zero_range (w, off, n, skip_zero, st) == -1)
        return -1;
    }
    else if (vb_nbd_writer_submit (w, buf, n, off) == -1)
      return -1;
    else
      st->data += n;
    off += n;
    len -= n;
  }
  return 0;
}

/* A raw image: its data extents become writes and its holes zeroes, so
 * the restored image is as sparse as the file.  Nothing at or past LIMIT. */
static int
apply_raw (struct vb_nbd_writer *w, const struct vb_chain_file *f,
           bool skip_zero, uint64_t limit, struct vb_apply_stats *st)
{
  CLEANUP_CLOSE int fd = open (f->path, O_RDONLY | O_CLOEXEC);
  off_t end = f->file_size < limit ? f->file_size : limit, pos = 0;

  if (fd == -1) {
    vb_set_error_errno (errno, "%s", f->path);
    return -1;
  }
  while (pos < end) {
    off_t data = lseek (fd, pos, SEEK_DATA), hole;

    if (data == -1 && errno != ENXIO) {
      vb_set_error_errno (errno, "%s: seek at offset %jd", f->name,
                          (intmax_t) pos);
      return -1;
    }
    data = data == -1 || data > end ? end : data;
    if (zero_range (w, pos, data - pos, skip_zero, st) == -1)
      return -1;
    if (data == end)
      break;
    hole = lseek (fd, data, SEEK_HOLE);
    hole = hole == -1 || hole > end ? end : hole;
    if (copy_range (w, fd, f, data, hole - data, skip_zero, st) == -1)
      return -1;
    pos = hole;
  }
  return vb_nbd_writer_drain (w);
}

int
vb_apply_file (struct vb_nbd_writer *w, const struct vb_chain_file *f,
               bool skip_zero, uint64_t limit, struct vb_apply_stats *st)
{
  struct sumcheck sc = { .f = f };
  pthread_t th;
  bool threaded = pthread_create (&th, NULL, sum_thread, &sc) == 0;
  int ret;

  if (!threaded)
    sum_thread (&sc);
  ret = f->raw ? apply_raw (w, f, skip_zero, limit, st)
               : apply_stream (w, f, skip_zero, limit, st);
  if (threaded)
    pthread_join (th, NULL);
  if (ret == 0 && sc.ret == -1) {
    vb_set_error_str (sc.msg);
    ret = -1;
  }
  return ret;
}
