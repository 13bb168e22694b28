/* SPDX-License-Identifier: GPL-3.0-or-later */
/* dir_read.c: the directory backend's read side (lists, whole files,
 * read handles) and its names (stat, remove, rename, mkdir).  Names are
 * checked by target.c before they get here. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backupset/backupset.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "target/target_local.h"

static int
cmp_str (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static int
push (char ***v, size_t *n, size_t *cap, const char *s)
{
  if (*n + 2 > *cap) {
    size_t c = *cap ? 2 * *cap : 32;
    char **nv = realloc (*v, c * sizeof *nv);
    if (!nv)
      return -1;
    *v = nv;
    *cap = c;
  }
  if (!((*v)[*n] = strdup (s)))
    return -1;
  (*v)[++*n] = NULL;
  return 0;
}

char **
vb_dir_list (struct vb_target *t, const char *subdir)
{
  CLEANUP_FREE char *path = subdir ? vb_path_join (t->where, subdir)
                                   : strdup (t->where);
  DIR *d = path ? opendir (path) : NULL;
  char **v = calloc (1, sizeof *v);
  size_t n = 0, cap = 1;
  struct dirent *e;

  /* A missing subdirectory is empty; the target itself must be there. */
  if (!d && (!path || errno != ENOENT || !subdir)) {
    vb_set_error_errno (path ? errno : ENOMEM, "%s", path ? path : t->where);
    free (v);
    return NULL;
  }
  while (d && v && (e = readdir (d)) != NULL)
    if (strcmp (e->d_name, ".") && strcmp (e->d_name, "..") &&
        push (&v, &n, &cap, e->d_name) < 0) {
      vb_strv_free (v);
      v = NULL;
    }
  if (d)
    closedir (d);
  if (!v) {
    vb_set_error ("out of memory");
    return NULL;
  }
  qsort (v, n, sizeof *v, cmp_str);
  return v;
}

char *
vb_dir_read (struct vb_target *t, const char *name, size_t *len)
{
  CLEANUP_FREE char *path = vb_path_join (t->where, name);

  return path ? vb_read_file (path, len) : NULL;
}

int
vb_dir_stat (struct vb_target *t, const char *name, struct vb_target_stat *st)
{
  CLEANUP_FREE char *path = vb_path_join (t->where, name);
  struct stat sb;

  if (!path)
    return -1;
  if (stat (path, &sb) < 0) {
    if (errno == ENOENT)
      return 0;
    vb_set_error_errno (errno, "%s", path);
    return -1;
  }
  st->exists = true;
  st->is_dir = S_ISDIR (sb.st_mode);
  st->size = sb.st_size;
  st->allocated = (uint64_t) sb.st_blocks * 512;
  st->mtime = sb.st_mtime;
  return 0;
}

/* The directory NAME is in, for its fsync. */
static char *
parent_of (struct vb_target *t, const char *name)
{
  CLEANUP_FREE char *path = vb_path_join (t->where, name);

  return path ? strdup (dirname (path)) : NULL;
}

int
vb_dir_remove (struct vb_target *t, const char *name)
{
  CLEANUP_FREE char *path = vb_path_join (t->where, name);
  CLEANUP_FREE char *dir = parent_of (t, name);
  struct stat sb;

  if (!path || !dir)
    return -1;
  if (lstat (path, &sb) < 0 && errno == ENOENT)
    return 0;
  if (errno != ENOENT && lstat (path, &sb) < 0) {
    vb_set_error_errno (errno, "remove %s", path);
    return -1;
  }
  if ((S_ISDIR (sb.st_mode) ? rmdir (path) : unlink (path)) < 0 &&
      errno != ENOENT) {
    vb_set_error_errno (errno, "remove %s", path);
    return -1;
  }
  return vb_fsync_dir (dir);
}

int
vb_dir_ensure (struct vb_target *t)
{
  return vb_mkdir_p_as (t->where, t->policy.dir_mode, t->policy.group);
}

int
vb_dir_mkdir (struct vb_target *t, const char *name)
{
  CLEANUP_FREE char *path = name ? vb_path_join (t->where, name) : NULL;

  if (!name) {
    if (vb_dir_ensure (t) < 0)
      return -1;
    if (access (t->where, W_OK) < 0) {
      vb_set_error_errno (errno, "target directory %s is not writable",
                          t->where);
      return -1;
    }
    return 0;
  }
  return path ? vb_mkdir_p_as (path, t->policy.dir_mode, t->policy.group)
              : -1;
}

int
vb_dir_rename (struct vb_target *t, const char *from, const char *to)
{
  CLEANUP_FREE char *src = vb_path_join (t->where, from);
  CLEANUP_FREE char *dst = vb_path_join (t->where, to);
  CLEANUP_FREE char *sdir = parent_of (t, from);
  CLEANUP_FREE char *ddir = parent_of (t, to);

  if (!src || !dst || !sdir || !ddir || vb_dir_ensure (t) < 0 ||
      vb_mkdir_p_as (ddir, t->policy.dir_mode, t->policy.group) < 0)
    return -1;
  if (rename (src, dst) < 0) {
    vb_set_error_errno (errno, "rename %s to %s", src, dst);
    return -1;
  }
  if (vb_fsync_dir (ddir) < 0)
    return -1;
  return strcmp (sdir, ddir) ? vb_fsync_dir (sdir) : 0;
}

/* ---- read handles over a file descriptor ---- */

struct fd_rfile {
  struct vb_rfile rf;
  int fd;
  bool own;
};

/* pread has no file position, so threads may share the fd. */
static ssize_t
fd_pread (struct vb_rfile *rf, void *buf, size_t len, uint64_t off)
{
  struct fd_rfile *fr = (struct fd_rfile *) rf;
  size_t got = 0;

  while (got < len) {
    ssize_t n = pread (fr->fd, (char *) buf + got, len - got, off + got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      vb_set_error_errno (errno, "%s: offset 0x%" PRIx64 ": read", rf->name,
                          off + got);
      return -1;
    }
    if (n == 0)
      break;
    got += n;
  }
  return got;
}

static int
fd_next_data (struct vb_rfile *rf, uint64_t pos, uint64_t *data,
              uint64_t *hole)
{
  struct fd_rfile *fr = (struct fd_rfile *) rf;
  off_t d = lseek (fr->fd, pos, SEEK_DATA), h;

  if (d < 0 && errno == ENXIO)
    return 0;
  if (d < 0 || (h = lseek (fr->fd, d, SEEK_HOLE)) < 0) {
    vb_set_error_errno (errno, "%s: seek", rf->name);
    return -1;
  }
  *data = d;
  *hole = h;
  return 1;
}

static void
fd_close (struct vb_rfile *rf)
{
  struct fd_rfile *fr = (struct fd_rfile *) rf;

  if (fr->own)
    close (fr->fd);
  free (rf->name);
  free (fr);
}

static const struct vb_rfile_ops fd_ops = {
  .pread = fd_pread, .next_data = fd_next_data, .close = fd_close,
};

static struct vb_rfile *
wrap_fd (int fd, const char *name, bool own)
{
  struct fd_rfile *fr = calloc (1, sizeof *fr);
  struct stat sb;

  if (!fr || !(fr->rf.name = strdup (name ? name : "(stream)"))) {
    free (fr);
    vb_set_error ("out of memory");
    return NULL;
  }
  fr->rf.ops = &fd_ops;
  fr->fd = fd;
  fr->own = own;
  if (fstat (fd, &sb) < 0) {
    vb_set_error_errno (errno, "%s: stat", fr->rf.name);
    fr->own = false;
    fd_close (&fr->rf);
    return NULL;
  }
  fr->rf.size = sb.st_size;
  return &fr->rf;
}

struct vb_rfile *
vb_rfile_fd (int fd, const char *name)
{
  return wrap_fd (fd, name, false);
}

struct vb_rfile *
vb_dir_open_read (struct vb_target *t, const char *name)
{
  CLEANUP_FREE char *path = vb_path_join (t->where, name);
  struct vb_rfile *rf;
  int fd;

  if (!path)
    return NULL;
  if ((fd = open (path, O_RDONLY | O_CLOEXEC)) < 0) {
    vb_set_error_errno (errno, "%s", path);
    return NULL;
  }
  if (!(rf = wrap_fd (fd, path, true)))
    close (fd);
  return rf;
}
