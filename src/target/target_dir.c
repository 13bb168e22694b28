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

#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "target/target.h"
#include "target/target_local.h"

#define DIR_BUF_SIZE (2 * 1024 * 1024)

struct dir_file {
  struct vb_tfile f;
  int fd;
  char *path;                   /* final name */
  char *partial;                /* NAME.partial, where the bytes go */
  bool append;                  /* written in place: no .partial */
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

/* The error of a failed call on DF's file; target.c makes it sticky and
 * adds the "(target full)" hint. */
static int
file_fail (struct dir_file *df, const char *op, int err)
{
  vb_set_error_code (vb_err_code_of (err), err, "%s: %s: %s", df->partial,
                     op, strerror (err));
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
  free (df->buf);
  free (df);
}

static struct dir_file *
new_file (struct vb_target *t, const char *name, bool append)
{
  struct dir_file *df = calloc (1, sizeof *df);

  if (!df) {
    vb_set_error ("out of memory");
    return NULL;
  }
  df->fd = -1;
  df->f.t = t;
  df->append = append;
  if (!(df->f.name = strdup (name)) || !(df->buf = malloc (DIR_BUF_SIZE)) ||
      !(df->path = vb_path_join (t->where, name)) ||
      asprintf (&df->partial, append ? "%s" : "%s.partial", df->path) < 0) {
    df->partial = NULL;
    free_file (df);
    vb_set_error ("out of memory");
    return NULL;
  }
  return df;
}

/* Open DF's file with the target's mode and group. */
static int
open_file (struct dir_file *df, int flags)
{
  const struct vb_target_policy *p = &df->f.t->policy;

  df->fd = open (df->partial, flags | O_CLOEXEC | O_NOFOLLOW, p->file_mode);
  if (df->fd < 0 || vb_fs_chgrp_fd (df->fd, p->group, df->partial) < 0 ||
      fchmod (df->fd, p->file_mode) < 0) {
    vb_set_error_errno (errno, "create %s", df->partial);
    return -1;
  }
  return 0;
}

static struct vb_tfile *
dir_create (struct vb_target *t, const char *name)
{
  struct dir_file *df = vb_dir_ensure (t) < 0 ? NULL
                        : new_file (t, name, false);

  /* Read-write: shift() moves bytes already written. */
  if (df && open_file (df, O_CREAT | O_TRUNC | O_RDWR) < 0) {
    if (df->fd >= 0)
      unlink (df->partial);
    free_file (df);
    return NULL;
  }
  return df ? &df->f : NULL;
}

static struct vb_tfile *
dir_append (struct vb_target *t, const char *name)
{
  struct dir_file *df = vb_dir_ensure (t) < 0 ? NULL
                        : new_file (t, name, true);

  if (df && open_file (df, O_CREAT | O_WRONLY | O_APPEND) < 0) {
    free_file (df);
    return NULL;
  }
  return df ? &df->f : NULL;
}

static int
dir_write (struct vb_tfile *f, const void *buf, size_t len)
{
  struct dir_file *df = (struct dir_file *) f;

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
  return 0;
}

static int
dir_flush (struct vb_tfile *f)
{
  return flush_buf ((struct dir_file *) f);
}

static int
dir_pwrite (struct vb_tfile *f, const void *buf, size_t len, uint64_t off)
{
  struct dir_file *df = (struct dir_file *) f;

  if (flush_buf (df) < 0)
    return -1;
  if (vb_pwrite_all (df->fd, buf, len, off) < 0)
    return file_fail (df, "write", vb_get_errno ());
  return 0;
}

static int
dir_truncate (struct vb_tfile *f, uint64_t size)
{
  struct dir_file *df = (struct dir_file *) f;

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

  if (df->buflen) {
    vb_set_error ("%s: reserve after a write", df->partial);
    return -1;
  }
  if (lseek (df->fd, len, SEEK_SET) < 0)
    return file_fail (df, "seek", errno);
  df->pos = df->kicked = df->dropped = len;
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
  df->pos = newend;
  df->kicked = df->kicked < newend ? df->kicked : newend;
  df->dropped = df->dropped < newend ? df->dropped : newend;
  return 0;
}

static int
commit_steps (struct dir_file *df)
{
  int fd = df->fd;

  if (flush_buf (df) < 0)
    return -1;
  if (fsync (fd) < 0)
    return file_fail (df, "fsync", errno);
  df->fd = -1;
  if (close (fd) < 0)
    return file_fail (df, "close", errno);
  if (df->append)
    return 0;
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

  if (r < 0 && !df->append)
    unlink (df->partial);
  free_file (df);
  return r;
}

static void
dir_abort (struct vb_tfile *f)
{
  struct dir_file *df = (struct dir_file *) f;

  if (!df->append)
    unlink (df->partial);
  else
    flush_buf (df);             /* a log keeps what it has */
  free_file (df);
}

static int
dir_put (struct vb_target *t, const char *name, const void *buf, size_t len)
{
  if (vb_dir_ensure (t) < 0)
    return -1;
  return vb_write_file_atomic_as (t->where, name, buf, len,
                                  t->policy.file_mode, t->policy.group);
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
  .flush = dir_flush,
  .pwrite = dir_pwrite,
  .truncate = dir_truncate,
  .reserve = dir_reserve,
  .shift = dir_shift,
  .commit = dir_commit,
  .abort = dir_abort,
  .put = dir_put,
  .append = dir_append,
  .list = vb_dir_list,
  .read = vb_dir_read,
  .open_read = vb_dir_open_read,
  .stat = vb_dir_stat,
  .remove = vb_dir_remove,
  .rename = vb_dir_rename,
  .mkdir = vb_dir_mkdir,
  .lock = vb_local_lock,
  .locked = vb_local_locked,
  .unlock = vb_local_unlock,
  .close = dir_close,
};

struct vb_target *
vb_target_dir_open (const char *dir, const struct vb_target_policy *policy)
{
  static const struct vb_target_policy def = VB_TARGET_POLICY_DEFAULT;
  struct vb_target *t;
  struct stat st;
  int r = stat (dir, &st);

  if (r < 0 && errno != ENOENT) {
    vb_set_error_errno (errno, "target directory %s", dir);
    return NULL;
  }
  if (r == 0 && !S_ISDIR (st.st_mode)) {
    vb_set_error ("target %s: not a directory", dir);
    return NULL;
  }
  if (!(t = calloc (1, sizeof *t)) || !(t->where = strdup (dir))) {
    free (t);
    vb_set_error ("out of memory");
    return NULL;
  }
  t->ops = &dir_ops;
  t->policy = policy ? *policy : def;
  t->policy.file_mode &= 07777;
  t->policy.dir_mode &= 07777;
  return t;
}
