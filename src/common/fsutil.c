/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"

int
vb_fs_chgrp_fd (int fd, gid_t gid, const char *what)
{
  if (gid != (gid_t) -1 && fchown (fd, -1, gid) < 0) {
    vb_set_error_errno (errno, "chgrp %s", what);
    return -1;
  }
  return 0;
}

/* fsync PATH opened with FLAGS; WHAT names it in the error. */
static int
fsync_path (const char *path, int flags, const char *what)
{
  CLEANUP_CLOSE int fd = open (path, flags | O_CLOEXEC);

  if (fd < 0) {
    vb_set_error_errno (errno, "open %s%s", what, path);
    return -1;
  }
  if (fsync (fd) < 0) {
    vb_set_error_errno (errno, "fsync %s%s", what, path);
    return -1;
  }
  return 0;
}

int
vb_fsync_dir (const char *dir)
{
  return fsync_path (dir, O_RDONLY | O_DIRECTORY, "directory ");
}

int
vb_fsync_file (const char *path)
{
  return fsync_path (path, O_RDONLY, "");
}

/* The error of a failed write; the caller adds which file.  errno is
 * kept too, for callers that make their own message. */
static int
write_error (const char *op)
{
  int e = errno;

  vb_set_error_errno (e, "%s", op);
  errno = e;
  return -1;
}

int
vb_write_all (int fd, const void *buf, size_t len)
{
  const char *p = buf;

  while (len > 0) {
    ssize_t r = write (fd, p, len);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return write_error ("write");
    }
    p += r;
    len -= r;
  }
  return 0;
}

int
vb_pwrite_all (int fd, const void *buf, size_t len, uint64_t off)
{
  const char *p = buf;

  while (len > 0) {
    ssize_t r = pwrite (fd, p, len, off);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      if (r == 0)
        errno = EIO;           /* no progress: do not spin */
      return write_error ("pwrite");
    }
    p += r;
    off += r;
    len -= r;
  }
  return 0;
}

int
vb_writev_all (int fd, struct iovec *iov, int n)
{
  while (n > 0) {
    ssize_t r = writev (fd, iov, n);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return write_error ("writev");
    }
    while (n > 0 && (size_t) r >= iov->iov_len) {
      r -= iov->iov_len;
      iov++, n--;
    }
    if (n > 0) {
      iov->iov_base = (char *) iov->iov_base + r;
      iov->iov_len -= r;
    }
  }
  return 0;
}

char *
vb_path_join (const char *dir, const char *name)
{
  char *s;

  if (asprintf (&s, "%s/%s", dir, name) < 0) {
    vb_set_error_errno (errno, "asprintf");
    return NULL;
  }
  return s;
}

const char *
vb_path_base (const char *path)
{
  const char *slash = strrchr (path, '/');

  return slash ? slash + 1 : path;
}

int
vb_write_file_atomic (const char *dir, const char *name,
                      const void *data, size_t len, mode_t mode)
{
  return vb_write_file_atomic_as (dir, name, data, len, mode, (gid_t) -1);
}

int
vb_write_file_atomic_as (const char *dir, const char *name, const void *data,
                         size_t len, mode_t mode, gid_t gid)
{
  CLEANUP_FREE char *path = vb_path_join (dir, name);
  CLEANUP_FREE char *tmp = NULL;
  int fd;

  if (!path || asprintf (&tmp, "%s.tmp", path) < 0) {
    vb_set_error ("out of memory");
    return -1;
  }
  fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    vb_set_error_errno (errno, "create %s", tmp);
    return -1;
  }
  if (vb_fs_chgrp_fd (fd, gid, tmp) < 0) {
    close (fd);
    unlink (tmp);
    return -1;
  }
  if (fchmod (fd, mode) < 0 || vb_write_all (fd, data, len) < 0 ||
      fsync (fd) < 0) {
    vb_set_error_errno (errno, "write %s", tmp);
    close (fd);
    unlink (tmp);
    return -1;
  }
  if (close (fd) < 0 || rename (tmp, path) < 0) {
    vb_set_error_errno (errno, "rename %s", tmp);
    unlink (tmp);
    return -1;
  }
  return vb_fsync_dir (dir);
}

char *
vb_read_file (const char *path, size_t *len)
{
  CLEANUP_FCLOSE FILE *fp = fopen (path, "re");
  char *buf = NULL;
  size_t n = 0;
  FILE *mem;

  if (!fp) {
    vb_set_error_errno (errno, "open %s", path);
    return NULL;
  }
  mem = open_memstream (&buf, &n);
  if (!mem) {
    vb_set_error_errno (errno, "open_memstream");
    return NULL;
  }
  char chunk[65536];
  size_t r;
  while ((r = fread (chunk, 1, sizeof chunk, fp)) > 0)
    fwrite (chunk, 1, r, mem);
  if (ferror (fp)) {
    vb_set_error_errno (errno, "read %s", path);
    fclose (mem);
    free (buf);
    return NULL;
  }
  fclose (mem);
  if (len)
    *len = n;
  return buf;
}

int
vb_mkdir_p (const char *path, mode_t mode)
{
  return vb_mkdir_p_as (path, mode, (gid_t) -1);
}

int
vb_mkdir_p_as (const char *path, mode_t mode, gid_t gid)
{
  CLEANUP_FREE char *p = strdup (path);

  if (!p) {
    vb_set_error ("out of memory");
    return -1;
  }
  for (char *s = p + 1; ; s++) {
    if (*s == '/' || *s == '\0') {
      char c = *s;
      *s = '\0';
      if (mkdir (p, mode) == 0) {
        if (gid != (gid_t) -1 && chown (p, -1, gid) < 0) {
          vb_set_error_errno (errno, "chgrp %s", p);
          return -1;
        }
        if (chmod (p, mode) < 0) {
          vb_set_error_errno (errno, "chmod %s", p);
          return -1;
        }
      }
      else if (errno != EEXIST) {
        vb_set_error_errno (errno, "mkdir %s", p);
        return -1;
      }
      *s = c;
      if (c == '\0')
        break;
    }
  }
  return 0;
}

bool
vb_has_suffix (const char *s, const char *suffix)
{
  size_t n = strlen (s), m = strlen (suffix);

  return n >= m && strcmp (s + n - m, suffix) == 0;
}

int
vb_dir_is_empty (const char *path)
{
  DIR *d = opendir (path);
  struct dirent *e;
  int empty = 1;

  if (!d) {
    if (errno == ENOENT)
      return 1;
    vb_set_error_errno (errno, "open directory %s", path);
    return -1;
  }
  while ((e = readdir (d)) != NULL) {
    if (strcmp (e->d_name, ".") && strcmp (e->d_name, "..")) {
      empty = 0;
      break;
    }
  }
  closedir (d);
  return empty;
}
