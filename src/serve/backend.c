/* SPDX-License-Identifier: GPL-3.0-or-later */
/* backend.c: the images behind tickets (internal.h): an NBD export
 * (libnbd, one connection per backend), a raw file, or a backup point
 * read through its view (read-only). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backupset/chain.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "serve/internal.h"
#include "target/target.h"
#include "view/view.h"

struct vb_backend *
vb_backend_new (const struct vb_backend_ops *ops, void *priv, uint64_t size)
{
  struct vb_backend *b = calloc (1, sizeof *b);

  if (!b)
    return vb_set_error_errno (ENOMEM, "backend"), NULL;
  b->refs = 1;
  b->ops = ops;
  b->priv = priv;
  b->size = size;
  b->max_writers = 1;
  return b;
}

void
vb_backend_ref (struct vb_backend *b)
{
  __atomic_add_fetch (&b->refs, 1, __ATOMIC_SEQ_CST);
}

void
vb_backend_unref (struct vb_backend *b)
{
  if (b && __atomic_sub_fetch (&b->refs, 1, __ATOMIC_SEQ_CST) == 0) {
    b->ops->close (b);
    free (b);
  }
}

int
vb_backend_max_writers (enum vb_url_kind kind)
{
  return kind == VB_URL_NBD ? VB_SERVE_NBD_WRITERS
    : kind == VB_URL_FILE ? 1 : 0;
}

/* ---- URLs ---- */

/* An absolute path without "." or ".." components or empty ones, so that
 * what the ticket names is what is opened. */
static bool
clean_path (const char *p)
{
  if (p[0] != '/' || strlen (p) >= PATH_MAX)
    return false;
  for (const char *s = p; *s; ) {
    const char *e = strchrnul (s + 1, '/');
    size_t n = (size_t) (e - s - 1);

    if (n == 0 || (n == 1 && s[1] == '.') || (n == 2 && !strncmp (s + 1, "..", 2)))
      return false;
    s = e;
  }
  return true;
}

static int
printable (const char *s)
{
  for (; *s; s++)
    if ((unsigned char) *s < 0x20 || *s == 0x7f)
      return 0;
  return 1;
}

static int
parse_nbd (struct vb_ticket *t, const char *rest)
{
  const char *exp = strstr (rest, ":exportname=");
  size_t n = exp ? (size_t) (exp - rest) : strlen (rest);

  if (!(t->path = strndup (rest, n)))
    return vb_set_error_errno (ENOMEM, "url"), -1;
  if (exp && !(t->export = strdup (exp + strlen (":exportname="))))
    return vb_set_error_errno (ENOMEM, "url"), -1;
  if (!clean_path (t->path) || strlen (t->path) > 107
      || (t->export && (strlen (t->export) > 4096 || !printable (t->export)))) {
    vb_set_error ("Invalid ticket: url must be nbd:unix:/ABSOLUTE/SOCKET"
                  "[:exportname=NAME]");
    return -1;
  }
  return 0;
}

/* "virtback:DIR?disk=DISK[&until=CP]" */
static int
parse_virtback (struct vb_ticket *t, const char *rest)
{
  const char *q = strchr (rest, '?'), *amp;

  if (!q || strncmp (q, "?disk=", 6))
    goto bad;
  if (!(t->path = strndup (rest, (size_t) (q - rest))))
    return vb_set_error_errno (ENOMEM, "url"), -1;
  q += 6;
  amp = strchr (q, '&');
  if (!(t->export = strndup (q, amp ? (size_t) (amp - q) : strlen (q))))
    return vb_set_error_errno (ENOMEM, "url"), -1;
  if (amp && (strncmp (amp, "&until=", 7) || !(t->until = strdup (amp + 7))))
    goto bad;
  if (!clean_path (t->path) || !*t->export || !printable (t->export)
      || strchr (t->export, '/') || (t->until && !*t->until))
    goto bad;
  if (t->may_write) {
    vb_set_error ("Invalid ticket: a virtback: backup point is read-only; "
                  "give \"ops\": [\"read\"]");
    return -1;
  }
  return 0;
 bad:
  vb_set_error ("Invalid ticket: url must be virtback:/ABSOLUTE/DIR?disk=DISK"
                "[&until=CHECKPOINT]");
  return -1;
}

static int open_view (struct vb_ticket *t);

static bool
under (const char *path, const char *dir)
{
  size_t n = strlen (dir);

  if (n == 1)                  /* "/" */
    return true;
  return !strncmp (path, dir, n) && path[n] == '/';
}

int
vb_backend_allow_file (struct vb_ticket *t, char *const *dirs)
{
  char *real = realpath (t->path, NULL);

  if (!real) {
    vb_set_error_errno (errno, "Invalid ticket: %s", t->path);
    return -1;
  }
  for (char *const *d = dirs; d && *d; d++)
    if (under (real, *d)) {
      free (t->path);
      t->path = real;
      return 0;
    }
  vb_set_error ("Ticket path %s is outside the directories file:// tickets "
                "may use: add it to [file] allow in --config", real);
  free (real);
  return -1;
}

/* The file FD is the very path the ticket resolved to at PUT: a link
 * swapped in since then would lead elsewhere. */
static int
same_file (int fd, const char *path)
{
  char link[64], target[PATH_MAX];
  ssize_t n;

  snprintf (link, sizeof link, "/proc/self/fd/%d", fd);
  if ((n = readlink (link, target, sizeof target - 1)) < 0)
    return vb_set_error_errno (errno, "%s", link), -1;
  target[n] = '\0';
  if (strcmp (target, path)) {
    vb_set_error ("%s now leads to %s: add the ticket again", path, target);
    return -1;
  }
  return 0;
}

int
vb_backend_parse_url (struct vb_ticket *t)
{
  const char *u = t->url;

  if (!strncmp (u, "nbd:unix:", 9)) {
    t->kind = VB_URL_NBD;
    return parse_nbd (t, u + 9);
  }
  if (!strncmp (u, "file://", 7)) {
    t->kind = VB_URL_FILE;
    if (!(t->path = strdup (u + 7)))
      return vb_set_error_errno (ENOMEM, "url"), -1;
    if (clean_path (t->path) && !strpbrk (t->path, "?#%"))
      return 0;
    vb_set_error ("Invalid ticket: url must be file:///ABSOLUTE/PATH");
    return -1;
  }
  if (!strncmp (u, "virtback:", 9)) {
    t->kind = VB_URL_VIRTBACK;
    if (parse_virtback (t, u + 9) < 0)
      return -1;
    return open_view (t);
  }
  vb_set_error ("Invalid ticket: unsupported url: use nbd:unix:PATH, "
                "file:///PATH or virtback:DIR?disk=DISK");
  return -1;
}

/* ---- file ---- */

static int
file_fd (struct vb_backend *b)
{
  return (int) (intptr_t) b->priv;
}

static int
file_pread (struct vb_backend *b, void *buf, size_t len, uint64_t off)
{
  while (len) {
    ssize_t r = pread (file_fd (b), buf, len, (off_t) off);

    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      vb_set_error_errno (r < 0 ? errno : EIO, "read at %llu",
                          (unsigned long long) off);
      return -1;
    }
    buf = (char *) buf + r, len -= (size_t) r, off += (uint64_t) r;
  }
  return 0;
}

static int
file_pwrite (struct vb_backend *b, const void *buf, size_t len, uint64_t off)
{
  while (len) {
    ssize_t r = pwrite (file_fd (b), buf, len, (off_t) off);

    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      vb_set_error_errno (errno, "write at %llu", (unsigned long long) off);
      return -1;
    }
    buf = (const char *) buf + r, len -= (size_t) r, off += (uint64_t) r;
  }
  return 0;
}

static int
file_zero (struct vb_backend *b, uint64_t len, uint64_t off, bool punch)
{
  static const char zeros[1 << 16];
  int mode = punch ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
                   : FALLOC_FL_ZERO_RANGE;

  if (fallocate (file_fd (b), mode, (off_t) off, (off_t) len) == 0)
    return 0;
  if (!punch && fallocate (file_fd (b), FALLOC_FL_PUNCH_HOLE
                           | FALLOC_FL_KEEP_SIZE, (off_t) off, (off_t) len) == 0)
    return 0;
  for (uint64_t n; len; len -= n, off += n)
    if (file_pwrite (b, zeros, n = len < sizeof zeros ? len : sizeof zeros,
                     off) < 0)
      return -1;
  return 0;
}

static int
file_flush (struct vb_backend *b)
{
  if (fsync (file_fd (b)) < 0)
    return vb_set_error_errno (errno, "fsync"), -1;
  return 0;
}

/* Holes (SEEK_HOLE) read as zeros: zero extents; the rest is data. */
static int
file_extents (struct vb_backend *b, bool dirty, uint64_t off, uint64_t len,
              vb_srv_extent_cb cb, void *op)
{
  uint64_t end = off + len;

  while (off < end) {
    off_t data = lseek (file_fd (b), (off_t) off, SEEK_DATA), hole;
    uint64_t d = data < 0 ? end : (uint64_t) data < end ? (uint64_t) data : end;

    if (data < 0 && errno != ENXIO)
      return vb_set_error_errno (errno, "SEEK_DATA"), -1;
    if (d > off && cb (op, off, d - off, VB_EXT_F_ZERO) < 0)
      return -1;
    if (d >= end)
      break;
    if ((hole = lseek (file_fd (b), (off_t) d, SEEK_HOLE)) < 0)
      return vb_set_error_errno (errno, "SEEK_HOLE"), -1;
    off = (uint64_t) hole < end ? (uint64_t) hole : end;
    if (cb (op, d, off - d, 0) < 0)
      return -1;
  }
  return 0;
}

static void
file_close (struct vb_backend *b)
{
  close (file_fd (b));
}

static const struct vb_backend_ops file_ops = {
  file_pread, file_pwrite, file_zero, file_flush, file_extents, file_close,
};

static struct vb_backend *
file_open (struct vb_ticket *t)
{
  int fd = open (t->path, (t->may_write ? O_RDWR : O_RDONLY) | O_CLOEXEC
                 | O_NOFOLLOW);
  struct vb_backend *b;
  struct stat st;
  off_t size;

  if (fd < 0)
    return vb_set_error_errno (errno, "%s", t->path), NULL;
  if (same_file (fd, t->path) < 0) {
    close (fd);
    return NULL;
  }
  if (fstat (fd, &st) < 0 || (!S_ISREG (st.st_mode) && !S_ISBLK (st.st_mode))
      || (size = lseek (fd, 0, SEEK_END)) < 0) {
    close (fd);
    vb_set_error ("%s: not a regular file or block device", t->path);
    return NULL;
  }
  if (!(b = vb_backend_new (&file_ops, (void *) (intptr_t) fd, (uint64_t) size)))
    close (fd);
  return b;
}

/* ---- virtback: a backup point ---- */

static int
open_view (struct vb_ticket *t)
{
  struct vb_chain *c;
  const struct vb_chain_disk *d;
  struct vb_chain_file **files = NULL;

  if (!(t->repo = vb_target_dir_open (t->path, NULL)) ||
      !(c = vb_chain_scan (t->repo)))
    return -1;
  if (!(d = vb_chain_find_disk (c, t->export)))
    vb_set_error ("%s holds no disk %s", t->path, t->export);
  else if ((files = vb_chain_select (c, d, t->until)))
    t->view = vb_view_open_files (t->repo, files, 0);
  free (files);
  vb_chain_free (c);
  if (!t->view)
    return -1;
  if (vb_view_size (t->view) < t->size) {
    vb_set_error ("Invalid ticket: size %llu is larger than the disk (%llu)",
                  (unsigned long long) t->size,
                  (unsigned long long) vb_view_size (t->view));
    return -1;
  }
  return 0;
}

static int
view_pread (struct vb_backend *b, void *buf, size_t len, uint64_t off)
{
  return vb_view_pread (b->priv, buf, len, off);
}

static int
view_extents (struct vb_backend *b, bool dirty, uint64_t off, uint64_t len,
              vb_srv_extent_cb cb, void *op)
{
  struct vb_view_extent e[256];
  uint64_t end = off + len;
  size_t n;

  while (off < end && (n = vb_view_extents (b->priv, off, end - off, e, 256)))
    for (size_t i = 0; i < n; i++, off = e[i - 1].off + e[i - 1].len)
      if (cb (op, e[i].off, e[i].len,
              e[i].kind == VB_VIEW_DATA ? 0 : VB_EXT_F_ZERO) < 0)
        return -1;
  return 0;
}

static int
view_ro (struct vb_backend *b)
{
  vb_set_error ("a backup point is read-only");
  return -1;
}

static int
view_pwrite (struct vb_backend *b, const void *buf, size_t len, uint64_t off)
{
  return view_ro (b);
}

static int
view_zero (struct vb_backend *b, uint64_t len, uint64_t off, bool punch)
{
  return view_ro (b);
}

static void
view_close (struct vb_backend *b)
{
}

static const struct vb_backend_ops view_ops = {
  view_pread, view_pwrite, view_zero, view_ro, view_extents, view_close,
};

struct vb_backend *
vb_backend_open (struct vb_ticket *t)
{
  struct vb_backend *b = NULL;

  switch (t->kind) {
  case VB_URL_FILE: b = file_open (t); break;
  case VB_URL_NBD: b = vb_backend_nbd_open (t); break;
  case VB_URL_VIRTBACK:
    b = vb_backend_new (&view_ops, t->view, vb_view_size (t->view));
    break;
  }
  if (b && b->size < t->size) {
    vb_set_error ("the ticket's size %llu is larger than the image (%llu)",
                  (unsigned long long) t->size, (unsigned long long) b->size);
    vb_backend_unref (b);
    return NULL;
  }
  if (b)
    b->max_writers = vb_backend_max_writers (t->kind);
  return b;
}
