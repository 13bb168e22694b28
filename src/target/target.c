/* SPDX-License-Identifier: GPL-3.0-or-later */
/* target.c: the generic half of the target interface.  Every call goes
 * through here, so name checks, sticky errors, the "(target full)" hint,
 * byte counts and "not supported" are done once, whatever the backend. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backupset/backupset.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "target/target.h"

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

static bool
check_name (struct vb_target *t, const char *name)
{
  if (name && vb_target_valid_name (name))
    return true;
  vb_set_error ("%s: invalid file name '%s'", t->where, name ? name : "");
  return false;
}

static int
unsupported (struct vb_target *t, const char *op)
{
  vb_set_error ("%s: a %s target cannot %s: use a backup directory",
                t->where, t->ops->kind, op);
  return -1;
}

/* The one thing a user can act on in a failed write is a full target. */
static void
hint_full (void)
{
  struct vb_error e;

  if (vb_get_error_code () != VB_ERR_NOSPC ||
      strstr (vb_get_error (), "(target full)"))
    return;
  vb_error_save (&e);
  vb_set_error_code (e.code, e.errnum, "%s (target full)", e.msg);
}

/* Make the error just set F's sticky one (the first wins). */
static int
fail (struct vb_tfile *f)
{
  hint_full ();
  if (!f->err && (f->err = malloc (sizeof *f->err))) {
    vb_error_save (f->err);
    f->error = f->err->errnum ? f->err->errnum : EIO;
  }
  else if (!f->error)
    f->error = vb_get_errno () ? vb_get_errno () : EIO;
  return -1;
}

static int
sticky (struct vb_tfile *f)
{
  if (f->err)
    vb_error_restore (f->err);
  else
    vb_set_error_errno (f->error, "%s", f->name);
  return -1;
}

/* The last of the target's holders (its opener, its open files) to let
 * go ends it: FILES counts open files and drops below zero once closed. */
static void
release (struct vb_target *t)
{
  if (__atomic_fetch_sub (&t->files, 1, __ATOMIC_ACQ_REL) == 0)
    t->ops->close (t);
}

static struct vb_tfile *
held (struct vb_target *t, struct vb_tfile *f)
{
  if (f)
    __atomic_add_fetch (&t->files, 1, __ATOMIC_ACQ_REL);
  return f;
}

struct vb_tfile *
vb_target_create (struct vb_target *t, const char *name)
{
  return check_name (t, name) ? held (t, t->ops->create (t, name)) : NULL;
}

struct vb_tfile *
vb_target_append (struct vb_target *t, const char *name)
{
  if (!t->ops->append) {
    unsupported (t, "append to a file");
    return NULL;
  }
  return check_name (t, name) ? held (t, t->ops->append (t, name)) : NULL;
}

int
vb_tfile_write (struct vb_tfile *f, const void *buf, size_t len)
{
  if (f->error)
    return sticky (f);
  if (f->t->ops->write (f, buf, len) < 0)
    return fail (f);
  f->written += len;
  __atomic_add_fetch (&f->t->written, len, __ATOMIC_RELAXED);
  return 0;
}

int
vb_tfile_flush (struct vb_tfile *f)
{
  if (f->error)
    return sticky (f);
  if (f->t->ops->flush && f->t->ops->flush (f) < 0)
    return fail (f);
  return 0;
}

static int
need (struct vb_tfile *f, const void *op, const char *what)
{
  if (f->error)
    return sticky (f);
  if (!op)
    return unsupported (f->t, what);
  return 0;
}

int
vb_tfile_pwrite (struct vb_tfile *f, const void *buf, size_t len,
                 uint64_t off)
{
  if (need (f, f->t->ops->pwrite, "write at an offset") < 0)
    return -1;
  if (f->t->ops->pwrite (f, buf, len, off) < 0)
    return fail (f);
  if (off + len > f->written)
    f->written = off + len;
  __atomic_add_fetch (&f->t->written, len, __ATOMIC_RELAXED);
  return 0;
}

int
vb_tfile_truncate (struct vb_tfile *f, uint64_t size)
{
  if (need (f, f->t->ops->truncate, "truncate") < 0)
    return -1;
  return f->t->ops->truncate (f, size) < 0 ? fail (f) : 0;
}

int
vb_tfile_reserve (struct vb_tfile *f, uint64_t len)
{
  if (need (f, f->t->ops->reserve, "reserve a header") < 0)
    return -1;
  if (f->written) {
    vb_set_error ("%s: reserve after a write", f->name);
    return -1;
  }
  if (f->t->ops->reserve (f, len) < 0)
    return fail (f);
  f->written = len;
  return 0;
}

int
vb_tfile_shift (struct vb_tfile *f, uint64_t from, uint64_t to,
                volatile sig_atomic_t *cancel)
{
  if (need (f, f->t->ops->shift, "move bytes") < 0)
    return -1;
  if (from > f->written) {
    vb_set_error ("%s: shift from %" PRIu64 " past the end", f->name, from);
    return -1;
  }
  if (f->t->ops->shift (f, from, to, cancel) < 0)
    return fail (f);
  f->written = to + (f->written - from);
  return 0;
}

bool
vb_target_readable (const struct vb_target *t)
{
  return t->ops->list && t->ops->read && t->ops->open_read;
}

bool
vb_tfile_seekable (const struct vb_tfile *f)
{
  return f->t->ops->reserve && f->t->ops->shift && f->t->ops->pwrite;
}

/* A file with a sticky error is discarded, never committed. */
int
vb_tfile_commit (struct vb_tfile *f)
{
  struct vb_error *e = f->err;
  struct vb_target *t = f->t;
  int r;

  if (f->error) {
    sticky (f);
    f->err = NULL;
    t->ops->abort (f);
    if (e)
      vb_error_restore (e);
    free (e);
    release (t);
    return -1;
  }
  r = t->ops->commit (f);
  if (r < 0)
    hint_full ();
  free (e);
  release (t);
  return r;
}

void
vb_tfile_abort (struct vb_tfile *f)
{
  struct vb_target *t;

  if (!f)
    return;
  t = f->t;
  free (f->err);
  f->err = NULL;
  t->ops->abort (f);
  release (t);
}

int
vb_target_put (struct vb_target *t, const char *name, const void *buf,
               size_t len)
{
  if (!check_name (t, name))
    return -1;
  if (t->ops->put (t, name, buf, len) < 0) {
    hint_full ();
    return -1;
  }
  __atomic_add_fetch (&t->written, len, __ATOMIC_RELAXED);
  return 0;
}

char **
vb_target_list (struct vb_target *t, const char *subdir)
{
  if (!t->ops->list) {
    unsupported (t, "list its files");
    return NULL;
  }
  if (subdir && !check_name (t, subdir))
    return NULL;
  return t->ops->list (t, subdir);
}

char *
vb_target_read (struct vb_target *t, const char *name, size_t *len)
{
  if (!t->ops->read) {
    unsupported (t, "read a file");
    return NULL;
  }
  return check_name (t, name) ? t->ops->read (t, name, len) : NULL;
}

int
vb_target_stat (struct vb_target *t, const char *name,
                struct vb_target_stat *st)
{
  *st = (struct vb_target_stat) { 0 };
  if (!t->ops->stat)
    return unsupported (t, "look up a file");
  return check_name (t, name) ? t->ops->stat (t, name, st) : -1;
}

int
vb_target_remove (struct vb_target *t, const char *name)
{
  if (!t->ops->remove)
    return unsupported (t, "remove a file");
  return check_name (t, name) ? t->ops->remove (t, name) : -1;
}

int
vb_target_rename (struct vb_target *t, const char *from, const char *to)
{
  if (!t->ops->rename)
    return unsupported (t, "rename a file");
  if (!check_name (t, from) || !check_name (t, to))
    return -1;
  return t->ops->rename (t, from, to);
}

int
vb_target_mkdir (struct vb_target *t, const char *name)
{
  if (!t->ops->mkdir)
    return unsupported (t, "make a directory");
  return !name || check_name (t, name) ? t->ops->mkdir (t, name) : -1;
}

struct vb_rfile *
vb_target_open_read (struct vb_target *t, const char *name)
{
  if (!t->ops->open_read) {
    unsupported (t, "read a file");
    return NULL;
  }
  return check_name (t, name) ? t->ops->open_read (t, name) : NULL;
}

ssize_t
vb_rfile_pread (struct vb_rfile *rf, void *buf, size_t len, uint64_t off)
{
  return rf->ops->pread (rf, buf, len, off);
}

int
vb_rfile_next_data (struct vb_rfile *rf, uint64_t pos, uint64_t *data,
                    uint64_t *hole)
{
  if (pos >= rf->size)
    return 0;
  if (rf->ops->next_data)
    return rf->ops->next_data (rf, pos, data, hole);
  *data = pos;
  *hole = rf->size;
  return 1;
}

void
vb_rfile_close (struct vb_rfile *rf)
{
  if (rf)
    rf->ops->close (rf);
}

struct vb_tlock *
vb_target_lock (struct vb_target *t, const char *key, const char *label)
{
  if (!t->ops->lock) {
    unsupported (t, "hold a lock");
    return NULL;
  }
  return t->ops->lock (t, key, label);
}

int
vb_target_locked (struct vb_target *t, const char *key)
{
  if (!t->ops->locked)
    return unsupported (t, "look up a lock");
  return t->ops->locked (t, key);
}

void
vb_target_unlock (struct vb_tlock *l)
{
  if (l)
    l->t->ops->unlock (l);
}

int
vb_target_finish (struct vb_target *t)
{
  return t->ops->finish ? t->ops->finish (t) : 0;
}

void
vb_target_close (struct vb_target *t)
{
  if (t)
    release (t);
}
