/* SPDX-License-Identifier: GPL-3.0-or-later */
/* target_zip.c: a zip archive streamed to a file descriptor ("-o -").
 *
 * The output cannot seek, so, as Python's zipfile does on a pipe, each
 * entry starts with a local header whose CRC and sizes are unknown (flag
 * bit 3, sizes in a zip64 extra field as force_zip64 writes them), and its
 * real CRC-32 and sizes follow the data in a data descriptor.  The central
 * directory, built from what was remembered, ends the archive.  Entries are
 * stored, never compressed: data files are compressed already or sparse
 * streams, and readers must be able to seek into them.
 *
 * References: PKWARE APPNOTE 4.3.7 (local header), 4.3.9 (data
 * descriptor), 4.3.12 (central directory), 4.3.14-16 (zip64 end records),
 * 4.5.3 (zip64 extra field). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "backupset/backupset.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "target/target.h"
#include "target/target_local.h"

#define ZIP_BUF_SIZE (2 * 1024 * 1024)
/* Python's zipfile switches to zip64 fields above this (not 4 GiB), as
 * some readers treat the 32-bit fields as signed; do the same. */
#define ZIP64_LIMIT ((UINT64_C (1) << 31) - 1)
#define ZIP_VERSION 20          /* 2.0: stored, directories */
#define ZIP64_VERSION 45        /* 4.5: zip64 */
#define ZIP_UNIX 3              /* "version made by" host: Unix */
#define FLAG_DESCRIPTOR 0x0008
#define FLAG_UTF8 0x0800

struct zip_entry {
  char *name;
  uint32_t crc;
  uint64_t size;
  uint64_t offset;              /* of the local header */
  uint16_t dostime, dosdate;
  bool z64;                     /* zip64 local header and descriptor */
};

struct zip_target {
  struct vb_target t;
  int fd;
  uint64_t pos;                 /* archive bytes emitted (incl. buffered) */
  unsigned char *buf;
  size_t buflen;
  struct zip_entry *ents;
  size_t n, cap;
  struct vb_tfile *open;        /* the entry being written, if any */
  bool failed;                  /* an entry was aborted */
  bool finished;
  int error;                    /* errno of a failed output: it stays */
};

struct zip_file {
  struct vb_tfile f;
  struct zip_entry e;
};

/* ---- the output stream ---- */

/* Once the output failed, every later write fails the same way (the
 * archive cannot go on); target.c keeps each file's first error. */
static int
out_fail (struct zip_target *zt, const char *op, int err)
{
  if (!zt->error)
    zt->error = err;
  vb_set_error_code (vb_err_code_of (zt->error), zt->error, "%s: %s: %s",
                     zt->t.where, op, strerror (zt->error));
  return -1;
}

/* Append to the archive; small pieces are gathered, a piece that does not
 * fit leaves together with the buffer in one writev. */
static int
out_write (struct zip_target *zt, const void *p, size_t len)
{
  if (zt->error)
    return out_fail (zt, "write", zt->error);
  if (zt->buflen + len <= ZIP_BUF_SIZE) {
    memcpy (zt->buf + zt->buflen, p, len);
    zt->buflen += len;
  }
  else {
    struct iovec iov[2] = { { zt->buf, zt->buflen }, { (void *) p, len } };
    if (vb_writev_all (zt->fd, iov, 2) < 0)
      return out_fail (zt, "write", vb_get_errno ());
    zt->buflen = 0;
  }
  zt->pos += len;
  return 0;
}

static int
out_flush (struct zip_target *zt)
{
  struct iovec iov = { zt->buf, zt->buflen };

  if (zt->error)
    return out_fail (zt, "write", zt->error);
  if (vb_writev_all (zt->fd, &iov, 1) < 0)
    return out_fail (zt, "write", vb_get_errno ());
  zt->buflen = 0;
  return 0;
}

/* ---- little-endian records ---- */

struct rec {
  unsigned char b[128];
  size_t n;
};

static void
put_le (struct rec *r, uint64_t v, int bytes)
{
  for (int i = 0; i < bytes; i++, v >>= 8)
    r->b[r->n++] = v & 0xff;
}
#define P16(r, v) put_le ((r), (v), 2)
#define P32(r, v) put_le ((r), (v), 4)
#define P64(r, v) put_le ((r), (v), 8)

static uint16_t
name_flags (const char *name)
{
  for (const unsigned char *p = (const unsigned char *) name; *p; p++)
    if (*p >= 0x80)
      return FLAG_UTF8;
  return 0;
}

/* 4.3.7, with CRC and sizes deferred to the descriptor.  A zip64 entry
 * (size unknown) has sizes 0xffffffff and a zip64 extra of zero sizes,
 * exactly as zipfile's force_zip64 on a stream writes it. */
static int
write_local_header (struct zip_target *zt, const struct zip_entry *e)
{
  struct rec r = { .n = 0 };
  size_t namelen = strlen (e->name);

  P32 (&r, 0x04034b50);
  P16 (&r, e->z64 ? ZIP64_VERSION : ZIP_VERSION);
  P16 (&r, FLAG_DESCRIPTOR | name_flags (e->name));
  P16 (&r, 0);                          /* stored */
  P16 (&r, e->dostime);
  P16 (&r, e->dosdate);
  P32 (&r, 0);                          /* CRC: in the descriptor */
  P32 (&r, e->z64 ? 0xffffffff : 0);    /* sizes: in the descriptor */
  P32 (&r, e->z64 ? 0xffffffff : 0);
  P16 (&r, namelen);
  P16 (&r, e->z64 ? 20 : 0);
  if (out_write (zt, r.b, r.n) < 0 || out_write (zt, e->name, namelen) < 0)
    return -1;
  if (!e->z64)
    return 0;
  r.n = 0;
  P16 (&r, 0x0001);                     /* zip64 extended information */
  P16 (&r, 16);
  P64 (&r, 0);
  P64 (&r, 0);
  return out_write (zt, r.b, r.n);
}

static int
write_descriptor (struct zip_target *zt, const struct zip_entry *e)
{
  struct rec r = { .n = 0 };

  P32 (&r, 0x08074b50);
  P32 (&r, e->crc);
  put_le (&r, e->size, e->z64 ? 8 : 4); /* compressed = uncompressed */
  put_le (&r, e->size, e->z64 ? 8 : 4);
  return out_write (zt, r.b, r.n);
}

/* 4.3.12; values too big for 32 bits move into a zip64 extra field. */
static int
write_central_entry (struct zip_target *zt, const struct zip_entry *e)
{
  struct rec r = { .n = 0 }, x = { .n = 0 };
  bool bigsize = e->size > ZIP64_LIMIT, bigoff = e->offset > ZIP64_LIMIT;
  size_t namelen = strlen (e->name);
  int version = e->z64 || bigsize || bigoff ? ZIP64_VERSION : ZIP_VERSION;

  if (bigsize || bigoff) {
    P16 (&x, 0x0001);
    P16 (&x, 8 * (2 * bigsize + bigoff));
    if (bigsize) {
      P64 (&x, e->size);
      P64 (&x, e->size);
    }
    if (bigoff)
      P64 (&x, e->offset);
  }
  P32 (&r, 0x02014b50);
  P16 (&r, ZIP_UNIX << 8 | version);
  P16 (&r, version);
  P16 (&r, FLAG_DESCRIPTOR | name_flags (e->name));
  P16 (&r, 0);
  P16 (&r, e->dostime);
  P16 (&r, e->dosdate);
  P32 (&r, e->crc);
  P32 (&r, bigsize ? 0xffffffff : e->size);
  P32 (&r, bigsize ? 0xffffffff : e->size);
  P16 (&r, namelen);
  P16 (&r, x.n);
  P16 (&r, 0);                          /* comment */
  P16 (&r, 0);                          /* disk */
  P16 (&r, 0);                          /* internal attributes */
  P32 (&r, (uint32_t) zt->t.policy.file_mode << 16);  /* as zipfile: no S_IFREG */
  P32 (&r, bigoff ? 0xffffffff : e->offset);
  if (out_write (zt, r.b, r.n) < 0 || out_write (zt, e->name, namelen) < 0)
    return -1;
  return out_write (zt, x.b, x.n);
}

/* 4.3.14-16: zip64 end record and locator when a count, size or offset
 * does not fit the classic end record, which always comes last. */
static int
write_end (struct zip_target *zt, uint64_t cd_off, uint64_t cd_size)
{
  struct rec r = { .n = 0 };
  bool z64 = zt->n > 0xffff || cd_off > ZIP64_LIMIT || cd_size > ZIP64_LIMIT;

  if (z64) {
    uint64_t end64 = zt->pos;
    P32 (&r, 0x06064b50);
    P64 (&r, 44);                       /* size of the rest of the record */
    P16 (&r, ZIP64_VERSION);            /* as zipfile: no host byte */
    P16 (&r, ZIP64_VERSION);
    P32 (&r, 0);
    P32 (&r, 0);
    P64 (&r, zt->n);
    P64 (&r, zt->n);
    P64 (&r, cd_size);
    P64 (&r, cd_off);
    P32 (&r, 0x07064b50);               /* locator */
    P32 (&r, 0);
    P64 (&r, end64);
    P32 (&r, 1);
  }
  P32 (&r, 0x06054b50);
  P16 (&r, 0);
  P16 (&r, 0);
  P16 (&r, z64 ? 0xffff : zt->n);
  P16 (&r, z64 ? 0xffff : zt->n);
  P32 (&r, z64 ? 0xffffffff : cd_size);
  P32 (&r, z64 ? 0xffffffff : cd_off);
  P16 (&r, 0);                          /* comment length */
  return out_write (zt, r.b, r.n);
}

/* ---- the ops ---- */

static void
dos_now (struct zip_entry *e)
{
  time_t now = time (NULL);
  struct tm tm;

  localtime_r (&now, &tm);
  if (tm.tm_year < 80) {                /* DOS time starts in 1980 */
    tm.tm_year = 80;
    tm.tm_mon = 0;
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
  }
  e->dosdate = (tm.tm_year - 80) << 9 | (tm.tm_mon + 1) << 5 | tm.tm_mday;
  e->dostime = tm.tm_hour << 11 | tm.tm_min << 5 | tm.tm_sec / 2;
}

/* 0 if a new entry may start, else -1 with the reason. */
static int
check_can_start (struct zip_target *zt, const char *name)
{
  if (strlen (name) > 0xffff)
    vb_set_error ("%s: invalid file name '%s'", zt->t.where, name);
  else if (zt->failed)
    vb_set_error ("%s: zip archive is incomplete after an aborted file",
                  zt->t.where);
  else if (zt->finished)
    vb_set_error ("%s: zip archive is already finished", zt->t.where);
  else if (zt->open)
    vb_set_error ("%s: cannot start '%s' while '%s' is being written "
                  "(one file at a time)", zt->t.where, name,
                  zt->open->name);
  else if (zt->error)
    out_fail (zt, "write", zt->error);
  else
    return 0;
  return -1;
}

static struct vb_tfile *
start_entry (struct vb_target *t, const char *name, bool z64)
{
  struct zip_target *zt = (struct zip_target *) t;
  struct zip_file *zf;

  if (check_can_start (zt, name) < 0)
    return NULL;
  if (!(zf = calloc (1, sizeof *zf)) || !(zf->f.name = strdup (name))) {
    free (zf);
    vb_set_error ("out of memory");
    return NULL;
  }
  zf->f.t = t;
  zf->e.name = zf->f.name;
  zf->e.offset = zt->pos;
  zf->e.crc = crc32 (0, Z_NULL, 0);
  zf->e.z64 = z64;
  dos_now (&zf->e);
  if (write_local_header (zt, &zf->e) < 0) {
    free (zf->f.name);
    free (zf);
    return NULL;
  }
  zt->open = &zf->f;
  return &zf->f;
}

/* The size is unknown, so zip64 from the start, like virtnbdbackup's
 * data files (force_zip64). */
static struct vb_tfile *
zip_create (struct vb_target *t, const char *name)
{
  return start_entry (t, name, true);
}

static int
zip_write (struct vb_tfile *f, const void *buf, size_t len)
{
  struct zip_target *zt = (struct zip_target *) f->t;
  struct zip_file *zf = (struct zip_file *) f;

  if (out_write (zt, buf, len) < 0)
    return -1;
  zf->e.crc = crc32_z (zf->e.crc, buf, len);
  zf->e.size += len;
  return 0;
}

static void
free_file (struct zip_target *zt, struct zip_file *zf)
{
  zt->open = NULL;
  free (zf->f.name);
  free (zf);
}

static int
zip_commit (struct vb_tfile *f)
{
  struct zip_target *zt = (struct zip_target *) f->t;
  struct zip_file *zf = (struct zip_file *) f;
  struct zip_entry *ents;

  if (write_descriptor (zt, &zf->e) < 0) {
    zt->failed = true;
    free_file (zt, zf);
    return -1;
  }
  if (zt->n == zt->cap) {
    size_t cap = zt->cap ? 2 * zt->cap : 16;
    if (!(ents = realloc (zt->ents, cap * sizeof *ents))) {
      vb_set_error ("out of memory");
      zt->failed = true;
      free_file (zt, zf);
      return -1;
    }
    zt->ents = ents;
    zt->cap = cap;
  }
  zt->ents[zt->n++] = zf->e;            /* takes the name */
  zf->f.name = NULL;
  free_file (zt, zf);
  return 0;
}

/* Bytes already sent cannot be taken back: fail the whole archive. */
static void
zip_abort (struct vb_tfile *f)
{
  struct zip_target *zt = (struct zip_target *) f->t;

  zt->failed = true;
  free_file (zt, (struct zip_file *) f);
}

static int
zip_put (struct vb_target *t, const char *name, const void *buf, size_t len)
{
  /* The size is known: zip64 only if needed, with zipfile's margin. */
  struct vb_tfile *f = start_entry (t, name, len > ZIP64_LIMIT / 21 * 20);

  if (!f)
    return -1;
  if (zip_write (f, buf, len) < 0) {
    zip_abort (f);
    return -1;
  }
  return zip_commit (f);
}

static int
zip_finish (struct vb_target *t)
{
  struct zip_target *zt = (struct zip_target *) t;
  uint64_t cd_off = zt->pos;

  if (zt->finished)
    return 0;
  if (zt->failed || zt->open) {
    vb_set_error ("%s: zip archive is incomplete (%s)", t->where,
                  zt->open ? "a file is still open" : "a file was aborted");
    zt->failed = true;
    return -1;
  }
  for (size_t i = 0; i < zt->n; i++)
    if (write_central_entry (zt, &zt->ents[i]) < 0)
      return -1;
  if (write_end (zt, cd_off, zt->pos - cd_off) < 0 || out_flush (zt) < 0)
    return -1;
  zt->finished = true;
  return 0;
}

/* A failed archive gets no central directory.  Readers look for the end
 * record in the last 64 KiB + 22 bytes, and the aborted entry's own bytes
 * could hold one (a zip inside a disk image), so end with that many zero
 * bytes: then no reader can find an end record and take the archive for a
 * good one. */
static void
poison_tail (struct zip_target *zt)
{
  static const unsigned char zero[4096];

  for (size_t n = 0; n < 65536 + 22 + sizeof zero; n += sizeof zero)
    if (out_write (zt, zero, sizeof zero) < 0)
      return;
  out_flush (zt);
}

/* Only vb_target_finish() completes an archive: closing one nobody
 * finished means the run stopped part way (an error, a signal), so it must
 * stay without a central directory. */
static void
zip_close (struct vb_target *t)
{
  struct zip_target *zt = (struct zip_target *) t;

  /* Nothing sent is no archive either: nothing to spoil. */
  if (!zt->finished && zt->pos > 0)
    poison_tail (zt);
  for (size_t i = 0; i < zt->n; i++)
    free (zt->ents[i].name);
  free (zt->ents);
  free (zt->buf);
  free (t->where);
  free (zt);
}

static const struct vb_target_ops zip_ops = {
  .kind = "zip",
  .create = zip_create,
  .write = zip_write,
  .pwrite = NULL,
  .truncate = NULL,
  .commit = zip_commit,
  .abort = zip_abort,
  .put = zip_put,
  /* The lock is the host's, whatever the output. */
  .lock = vb_local_lock,
  .locked = vb_local_locked,
  .unlock = vb_local_unlock,
  .close = zip_close,
  .finish = zip_finish,
};

struct vb_target *
vb_target_zip_open (int fd, const struct vb_target_policy *policy)
{
  static const struct vb_target_policy def = VB_TARGET_POLICY_DEFAULT;
  struct zip_target *zt = calloc (1, sizeof *zt);
  int r;

  if (!zt || !(zt->buf = malloc (ZIP_BUF_SIZE))) {
    free (zt);
    vb_set_error ("out of memory");
    return NULL;
  }
  if (fd == STDOUT_FILENO)
    r = asprintf (&zt->t.where, "stdout");
  else
    r = asprintf (&zt->t.where, "zip stream (fd %d)", fd);
  if (r < 0) {
    free (zt->buf);
    free (zt);
    vb_set_error ("out of memory");
    return NULL;
  }
  zt->t.ops = &zip_ops;
  zt->t.policy = policy ? *policy : def;
  zt->fd = fd;
  return &zt->t;
}
