/* SPDX-License-Identifier: GPL-3.0-or-later */
/* target_dir.c: the directory target.  A file is written as NAME.partial
 * through a userspace buffer and only renamed to NAME by commit, after
 * fsync, so a crash or a failed run never leaves a good-looking file.
 *
 * The buffer exists because the stream writer sends a 40-byte frame header
 * before each payload: without it every header would cost a syscall.  A
 * write that does not fit goes out together with the buffered bytes in one
 * writev, so big payloads are never copied. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backupset/backupset.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "target/target.h"

#define DIR_BUF_SIZE (2 * 1024 * 1024)

struct dir_file {
  struct vb_tfile f;
  int fd;
  char *path;                   /* final name */
  char *partial;                /* NAME.partial, where the bytes go */
  char *errmsg;                 /* the first error, repeated while sticky */
  char *buf;
  size_t buflen;
  uint64_t pos;                 /* bytes handed to the kernel */
  uint64_t kicked;              /* writeback started up to here */
  uint64_t dropped;             /* on disk and out of the page cache */
};

/* Start writeback every KICK bytes, so the fsync at commit finds little
 * left to write and disk writes overlap the NBD reads; once a range is on
 * disk, drop it from the page cache: a backup should not evict the host's
 * working set. */
#define KICK (32ull << 20)
#define KEEP (128ull << 20)

bool
vb_target_valid_name (const char *name)
{
  CLEANUP_FREE char *copy = strdup (name);
  char *save = NULL;

  if (!copy || !*name || name[0] == '/' || strstr (name, "//") ||
      name[strlen (name) - 1] == '/')
    return false;
  for (char *p = strtok_r (copy, "/", &save); p;
       p = strtok_r (NULL, "/", &save))
    if (!vb_bset_safe_component (p))
      return false;
  return true;
}

static int sticky (struct dir_file *df);

/* Record the first I/O error of F and make it sticky.  A full file system
 * is called out, because that is the one the user can act on. */
static int
file_fail (struct dir_file *df, const char *op, int err)
{
  bool full = err == ENOSPC || err == EDQUOT;

  if (!df->f.error) {
    df->f.error = err;
    vb_set_error_code (vb_err_code_of (err), err, "%s: %s: %s%s", df->partial,
                       op, strerror (err), full ? " (target full)" : "");
    df->errmsg = strdup (vb_get_error ());
    return -1;
  }
  return sticky (df);
}

static int
sticky (struct dir_file *df)
{
  int e = df->f.error;

  if (df->errmsg)
    vb_set_error_code (vb_err_code_of (e), e, "%s", df->errmsg);
  else
    vb_set_error_errno (e, "%s", df->partial);
  return -1;
}

static void
writeback (struct dir_file *df, size_t len)
{
  df->pos += len;
  if (df->pos - df->kicked < KICK)
    return;
  sync_file_range (df->fd, df->kicked, df->pos - df->kicked,
                   SYNC_FILE_RANGE_WRITE);
  df->kicked = df->pos;
  /* Wait only for ranges kicked long ago: they are usually on disk by
   * now, so this rarely stalls the copy. */
  if (df->kicked - df->dropped < KEEP + KICK)
    return;
  uint64_t n = df->kicked - KEEP - df->dropped;
  /* Errors here surface again at fsync; nothing to handle. */
  sync_file_range (df->fd, df->dropped, n, SYNC_FILE_RANGE_WAIT_BEFORE |
                   SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
  posix_fadvise (df->fd, df->dropped, n, POSIX_FADV_DONTNEED);
  df->dropped += n;
}

static int
flush_buf (struct dir_file *df)
{
  struct iovec iov = { df->buf, df->buflen };

  if (df->buflen == 0)
    return 0;
  if (vb_writev_all (df->fd, &iov, 1) < 0)
    return file_fail (df, "write", vb_get_errno ());
  writeback (df, df->buflen);
  df->buflen = 0;
  return 0;
}

static void
free_file (struct dir_file *df)
{
  if (df->fd >= 0)
    close (df->fd);
  free (df->f.name);
  free (df->path);
  free (df->partial);
  free (df->errmsg);
  free (df->buf);
  free (df);
}

static struct vb_tfile *
dir_create (struct vb_target *t, const char *name)
{
  struct dir_file *df;

  if (!vb_target_valid_name (name)) {
    vb_set_error ("%s: invalid file name '%s'", t->where, name);
    return NULL;
  }
  if (!(df = calloc (1, sizeof *df))) {
    vb_set_error ("out of memory");
    return NULL;
  }
  df->fd = -1;
  df->f.t = t;
  if (!(df->f.name = strdup (name)) || !(df->buf = malloc (DIR_BUF_SIZE)) ||
      !(df->path = vb_path_join (t->where, name)) ||
      asprintf (&df->partial, "%s.partial", df->path) < 0) {
    df->partial = NULL;
    free_file (df);
    vb_set_error ("out of memory");
    return NULL;
  }
  /* Read-write: shift() moves bytes already written. */
  df->fd = open (df->partial, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC |
                 O_NOFOLLOW, vb_file_mode ());
  if (df->fd < 0 || vb_fs_chgrp_fd (df->fd, df->partial) < 0 ||
      fchmod (df->fd, vb_file_mode ()) < 0) {
    vb_set_error_errno (errno, "create %s", df->partial);
    if (df->fd >= 0)
      unlink (df->partial);
    free_file (df);
    return NULL;
  }
  return &df->f;
}

static int
dir_write (struct vb_tfile *f, const void *buf, size_t len)
{
  struct dir_file *df = (struct dir_file *) f;

  if (f->error)
    return sticky (df);
  if (df->buflen + len <= DIR_BUF_SIZE) {
    memcpy (df->buf + df->buflen, buf, len);
    df->buflen += len;
  }
  else {
    struct iovec iov[2] = { { df->buf, df->buflen },
                            { (void *) buf, len } };
    if (vb_writev_all (df->fd, iov, 2) < 0)
      return file_fail (df, "write", vb_get_errno ());
    writeback (df, df->buflen + len);
    df->buflen = 0;
  }
  f->written += len;
  return 0;
}

static int
dir_pwrite (struct vb_tfile *f, const void *buf, size_t len, uint64_t off)
{
  struct dir_file *df = (struct dir_file *) f;

  if (f->error)
    return sticky (df);
  if (flush_buf (df) < 0)
    return -1;
  if (vb_pwrite_all (df->fd, buf, len, off) < 0)
    return file_fail (df, "write", vb_get_errno ());
  if (off + len > f->written)
    f->written = off + len;
  return 0;
}

static int
dir_truncate (struct vb_tfile *f, uint64_t size)
{
  struct dir_file *df = (struct dir_file *) f;

  if (f->error)
    return sticky (df);
  if (flush_buf (df) < 0)
    return -1;
  if (ftruncate (df->fd, size) < 0)
    return file_fail (df, "truncate", errno);
  return 0;
}

static int
dir_reserve (struct vb_tfile *f, uint64_t len)
{
  struct dir_file *df = (struct dir_file *) f;

  if (f->error)
    return sticky (df);
  if (f->written || df->buflen) {
    vb_set_error ("%s: reserve after a write", df->partial);
    return -1;
  }
  if (lseek (df->fd, len, SEEK_SET) < 0)
    return file_fail (df, "seek", errno);
  df->pos = df->kicked = df->dropped = f->written = len;
  return 0;
}

/* Copy N bytes at FROM to TO through the file's buffer. */
static int
move_chunk (struct dir_file *df, uint64_t from, uint64_t to, size_t n)
{
  ssize_t r;

  for (size_t done = 0; done < n; done += r) {
    r = pread (df->fd, df->buf + done, n - done, from + done);
    if (r == 0)
      errno = EIO;             /* the file is shorter than we wrote */
    if (r <= 0 && errno != EINTR)
      return file_fail (df, "read", errno);
    if (r < 0)
      r = 0;
  }
  if (vb_pwrite_all (df->fd, df->buf, n, to) < 0)
    return file_fail (df, "write", vb_get_errno ());
  return 0;
}

/* Moving left goes front to back and moving right back to front, so no
 * chunk overwrites bytes not yet moved.  Every KICK bytes the moved range
 * is written out and dropped from the page cache, as for writes. */
static int
dir_shift (struct vb_tfile *f, uint64_t from, uint64_t to,
           volatile sig_atomic_t *cancel)
{
  struct dir_file *df = (struct dir_file *) f;
  uint64_t end = f->written, n, newend;
  uint64_t gap = from > to ? from - to : to - from;

  if (f->error)
    return sticky (df);
  if (from > end) {
    vb_set_error ("%s: shift from %" PRIu64 " past the end", df->partial, from);
    return -1;
  }
  n = end - from;
  newend = to + n;
  if (flush_buf (df) < 0)
    return -1;
  for (uint64_t done = 0; done < n; ) {
    size_t k = n - done < DIR_BUF_SIZE ? n - done : DIR_BUF_SIZE;
    uint64_t rel = to < from ? done : n - done - k;
    if (cancel && __atomic_load_n (cancel, __ATOMIC_RELAXED))
      return file_fail (df, "interrupted while moving", ECANCELED);
    if (move_chunk (df, from + rel, to + rel, k) < 0)
      return -1;
    done += k;
    if (done % KICK == 0 || done == n) {   /* the range touched so far */
      uint64_t a = to < from ? to : from + n - done;
      sync_file_range (df->fd, a, done + gap, SYNC_FILE_RANGE_WAIT_BEFORE |
                       SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
      posix_fadvise (df->fd, a, done + gap, POSIX_FADV_DONTNEED);
    }
  }
  if ((newend < end && ftruncate (df->fd, newend) < 0) ||
      lseek (df->fd, newend, SEEK_SET) < 0)
    return file_fail (df, "truncate", errno);
  df->pos = f->written = newend;
  df->kicked = df->kicked < newend ? df->kicked : newend;
  df->dropped = df->dropped < newend ? df->dropped : newend;
  return 0;
}

static int
commit_steps (struct dir_file *df)
{
  int fd = df->fd;

  if (df->f.error)
    return sticky (df);
  if (flush_buf (df) < 0)
    return -1;
  if (fsync (fd) < 0)
    return file_fail (df, "fsync", errno);
  df->fd = -1;
  if (close (fd) < 0)
    return file_fail (df, "close", errno);
  if (rename (df->partial, df->path) < 0) {
    vb_set_error_errno (errno, "rename %s", df->partial);
    return -1;
  }
  if (vb_fsync_dir (df->f.t->where) < 0) {
    unlink (df->path);
    return -1;
  }
  return 0;
}

/* Make NAME.partial durable, then visible as NAME.  On any failure the
 * file is removed: a half-committed file must never look complete. */
static int
dir_commit (struct vb_tfile *f)
{
  struct dir_file *df = (struct dir_file *) f;
  int r = commit_steps (df);

  if (r < 0)
    unlink (df->partial);
  free_file (df);
  return r;
}

static void
dir_abort (struct vb_tfile *f)
{
  struct dir_file *df = (struct dir_file *) f;

  unlink (df->partial);
  free_file (df);
}

static int
dir_put (struct vb_target *t, const char *name, const void *buf, size_t len)
{
  if (!vb_target_valid_name (name)) {
    vb_set_error ("%s: invalid file name '%s'", t->where, name);
    return -1;
  }
  if (vb_write_file_atomic (t->where, name, buf, len, vb_file_mode ()) == 0)
    return 0;
  /* fsutil's message names the file; add the hint a full target needs. */
  if (vb_get_error_code () == VB_ERR_NOSPC) {
    struct vb_error e;
    vb_error_save (&e);
    vb_set_error_code (e.code, e.errnum, "%s (target full)", e.msg);
  }
  return -1;
}

static void
dir_close (struct vb_target *t)
{
  free (t->where);
  free (t);
}

static const struct vb_target_ops dir_ops = {
  .kind = "directory",
  .create = dir_create,
  .write = dir_write,
  .pwrite = dir_pwrite,
  .truncate = dir_truncate,
  .reserve = dir_reserve,
  .shift = dir_shift,
  .commit = dir_commit,
  .abort = dir_abort,
  .put = dir_put,
  .close = dir_close,
};

struct vb_target *
vb_target_dir_open (const char *dir)
{
  struct vb_target *t;
  struct stat st;

  if (stat (dir, &st) < 0) {
    vb_set_error_errno (errno, "target directory %s", dir);
    return NULL;
  }
  if (!S_ISDIR (st.st_mode)) {
    vb_set_error ("target %s: not a directory", dir);
    return NULL;
  }
  if (!(t = calloc (1, sizeof *t)) || !(t->where = strdup (dir))) {
    free (t);
    vb_set_error ("out of memory");
    return NULL;
  }
  t->ops = &dir_ops;
  return t;
}
