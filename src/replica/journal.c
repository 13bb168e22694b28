/* SPDX-License-Identifier: GPL-3.0-or-later */
/* journal.c: the standby directory's state.json and lock, and the apply
 * step that moves a received sync into the images.  See replica.h.
 *
 * Apply is a list of steps each of which is either done or can be done
 * again with the same result: the overlay's header names <disk>.base.qcow2
 * as its backing (qemu-img rebase -u), the image becomes that base unless
 * the base exists, the overlay becomes the image; a new image is renamed
 * only if it is still there.  So "applying" in the journal means "run the
 * steps", however far an earlier try got.  The fold that follows is
 * idempotent too: the commit rewrites the same clusters, and the base is
 * renamed over the top only after it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/text.h"
#include "replica/internal.h"
#include "replica/replica.h"

struct json_object *
vb_journal_read (const char *dir)
{
  CLEANUP_FREE char *path = vb_path_join (dir, VB_REPLICA_STATE);
  CLEANUP_FREE char *text = NULL;
  struct json_object *j;
  size_t len;

  if (!path)
    return NULL;
  if (access (path, F_OK) < 0 && errno == ENOENT) {
    j = json_object_new_object ();
    json_object_object_add (j, "state", json_object_new_string ("idle"));
    return j;
  }
  if (!(text = vb_read_file (path, &len)))
    return NULL;
  j = json_tokener_parse (text);
  if (!j || !json_object_is_type (j, json_type_object) ||
      !vb_json_str (j, "state")) {
    json_object_put (j);
    vb_set_error ("%s is damaged: it is not the journal virtback writes",
                  path);
    return NULL;
  }
  return j;
}

int
vb_journal_write (const char *dir, struct json_object *j)
{
  size_t len;
  const char *s = json_object_to_json_string_length
    (j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

  return vb_write_file_atomic (dir, VB_REPLICA_STATE, s, len, 0600);
}

const char *
vb_journal_state (struct json_object *j)
{
  const char *s = vb_json_str (j, "state");
  return s ? s : "idle";
}

/* Without O_CLOEXEC: the helpers a holder runs inherit the lock, so a
 * qemu-img commit that outlives a killed receiver still holds DIR. */
static int
try_lock (const char *path, int how)
{
  int fd = open (path, O_RDWR | O_CREAT | O_NOFOLLOW, 0600);

  if (fd < 0) {
    vb_set_error_errno (errno, "open %s", path);
    return -1;
  }
  if (flock (fd, how | LOCK_NB) == 0)
    return fd;
  int e = errno;
  close (fd);
  errno = e;
  return -2;
}

int
vb_journal_lock (const char *dir, int wait_s)
{
  CLEANUP_FREE char *path = vb_path_join (dir, "lock");
  struct timespec ts = { 0, 100000000 };

  if (!path)
    return -1;
  for (int i = 0;; i++) {
    int fd = try_lock (path, LOCK_EX);
    if (fd != -2)
      return fd;
    if (errno != EWOULDBLOCK) {
      vb_set_error_errno (errno, "lock %s", path);
      return -1;
    }
    if (i >= wait_s * 10) {
      vb_set_error ("another virtback run is using %s (lock %s): wait for "
                    "it to end", dir, path);
      return -1;
    }
    nanosleep (&ts, NULL);
  }
}

int
vb_journal_locked (const char *dir)
{
  CLEANUP_FREE char *path = vb_path_join (dir, "lock");
  int fd;

  if (!path)
    return -1;
  if (access (path, F_OK) < 0)
    return 0;
  fd = try_lock (path, LOCK_SH);
  if (fd >= 0) {
    close (fd);
    return 0;
  }
  return fd == -2 && errno == EWOULDBLOCK ? 1 : -1;
}

char *
vb_replica_image (const char *dir, const char *disk, const char *kind)
{
  return vb_xasprintf ("%s/%s%s%s.qcow2", dir, disk, *kind ? "." : "", kind);
}

static struct json_object *
pending_disks (struct json_object *j)
{
  struct json_object *p, *d;

  if (!json_object_object_get_ex (j, "pending", &p) ||
      !json_object_object_get_ex (p, "disks", &d) ||
      !json_object_is_type (d, json_type_array))
    return NULL;
  return d;
}

static void
remove_file (const char *path)
{
  if (unlink (path) < 0 && errno != ENOENT)
    vb_warn ("cannot remove %s: %s", path, strerror (errno));
}

/* Drop what an unfinished receive wrote; the images stay as they were. */
static int
discard (const char *dir, struct json_object *j)
{
  struct json_object *disks = pending_disks (j);
  CLEANUP_FREE char *xml = vb_path_join (dir, "domain.xml.new");

  for (size_t i = 0; disks && i < json_object_array_length (disks); i++) {
    const char *t = vb_json_str (json_object_array_get_idx (disks, i),
                                 "target");
    CLEANUP_FREE char *ov = t ? vb_replica_image (dir, t, "sync") : NULL;
    CLEANUP_FREE char *nw = t ? vb_replica_image (dir, t, "new") : NULL;
    if (ov)
      remove_file (ov);
    if (nw)
      remove_file (nw);
  }
  if (xml)
    remove_file (xml);
  json_object_object_del (j, "pending");
  json_object_object_del (j, "pid");
  json_object_object_add (j, "state", json_object_new_string ("idle"));
  return vb_journal_write (dir, j);
}

static bool
exists (const char *path)
{
  return access (path, F_OK) == 0;
}

static int
move (const char *from, const char *to)
{
  if (rename (from, to) < 0) {
    vb_set_error_errno (errno, "rename %s to %s", from, to);
    return -1;
  }
  return 0;
}

enum vb_apply_step
vb_apply_next (bool sync, bool base, bool top)
{
  if (!sync)
    return top ? VB_APPLY_DONE : VB_APPLY_BAD;
  if (!base)
    return top ? VB_APPLY_BASE : VB_APPLY_BAD;
  return top ? VB_APPLY_BAD : VB_APPLY_TOP;
}

/* The overlay names its backing by a name relative to itself, so the
 * chain holds under the renames and in a moved directory. */
static int
rebase (const char *sync, const char *target)
{
  CLEANUP_FREE char *rel = vb_xasprintf ("%s.base.qcow2", target);
  char *const argv[] = { "qemu-img", "rebase", "-q", "-u", "-f", "qcow2",
                         "-F", "qcow2", "-b", rel, (char *) sync, NULL };

  return rel ? vb_proc_run (argv) : -1;
}

/* An incremental: the overlay becomes the top of the chain
 * <disk>.qcow2 -> <disk>.base.qcow2, without writing its data again. */
static int
chain_disk (const char *dir, const char *target)
{
  CLEANUP_FREE char *top = vb_replica_image (dir, target, "");
  CLEANUP_FREE char *base = vb_replica_image (dir, target, "base");
  CLEANUP_FREE char *sync = vb_replica_image (dir, target, "sync");

  if (!top || !base || !sync)
    return -1;
  if (exists (sync) && rebase (sync, target) < 0)
    return -1;
  for (;;) {
    switch (vb_apply_next (exists (sync), exists (base), exists (top))) {
    case VB_APPLY_DONE: return 0;
    case VB_APPLY_BASE: if (move (top, base) < 0) return -1; break;
    case VB_APPLY_TOP: if (move (sync, top) < 0) return -1; break;
    case VB_APPLY_BAD:
      vb_set_error ("disk %s: %s, %s and %s do not form one point", target,
                    top, base, sync);
      return -1;
    }
  }
}

/* A full sync: the new image replaces the chain, base included (a stale
 * base would read as a fold pending over an image that has none). */
static int
fresh_disk (const char *dir, const char *target)
{
  CLEANUP_FREE char *top = vb_replica_image (dir, target, "");
  CLEANUP_FREE char *base = vb_replica_image (dir, target, "base");
  CLEANUP_FREE char *nw = vb_replica_image (dir, target, "new");

  if (!top || !base || !nw)
    return -1;
  if (exists (nw) && move (nw, top) < 0)
    return -1;
  if (unlink (base) < 0 && errno != ENOENT) {
    vb_set_error_errno (errno, "remove %s", base);
    return -1;
  }
  return 0;
}

/* Copy the pending point's facts into the journal's completed ones. */
static void
complete (struct json_object *j)
{
  struct json_object *p = json_object_object_get (j, "pending");
  static const char *const keys[] = { "point", "time", "disks" };

  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    struct json_object *v = json_object_object_get (p, keys[i]);
    json_object_object_add (j, keys[i], json_object_get (v));
  }
  json_object_object_add (j, "completed",
                          json_object_new_int64 ((int64_t) time (NULL)));
  json_object_object_del (j, "pending");
  json_object_object_del (j, "pid");
  json_object_object_add (j, "state", json_object_new_string ("idle"));
}

int
vb_journal_apply (const char *dir, struct json_object *j)
{
  struct json_object *disks = pending_disks (j);
  struct json_object *p = json_object_object_get (j, "pending");
  const char *mode = vb_json_str (p, "mode");
  bool fresh = mode && !strcmp (mode, "new");
  CLEANUP_FREE char *xml = vb_path_join (dir, "domain.xml.new");
  CLEANUP_FREE char *to = vb_path_join (dir, "domain.xml");

  if (!disks || !mode || !xml || !to) {
    vb_set_error ("%s/%s: the pending sync is not described", dir,
                  VB_REPLICA_STATE);
    return -1;
  }
  for (size_t i = 0; i < json_object_array_length (disks); i++) {
    const char *t = vb_json_str (json_object_array_get_idx (disks, i),
                                 "target");
    if (!t || (fresh ? fresh_disk (dir, t) : chain_disk (dir, t)) < 0) {
      struct vb_error e;
      vb_error_save (&e);
      vb_set_error_code (e.code, e.errnum, "apply the sync to %s: %s; once "
                         "that is fixed, the next sync or 'virtback replica "
                         "apply %s' finishes it", dir, e.msg, dir);
      return -1;
    }
  }
  if (access (xml, F_OK) == 0 && rename (xml, to) < 0) {
    vb_set_error_errno (errno, "rename %s", xml);
    return -1;
  }
  if (vb_fsync_dir (dir) < 0)
    return -1;
  vb_phase ("renamed");
  complete (j);
  return vb_journal_write (dir, j);
}

/* ---- the fold: <disk>.base.qcow2 exists while one is pending ---- */

int
vb_journal_fold_pending (const char *dir, struct json_object *j)
{
  struct json_object *disks = json_object_object_get (j, "disks");
  int n = 0;

  for (size_t i = 0; disks && i < json_object_array_length (disks); i++) {
    const char *t = vb_json_str (json_object_array_get_idx (disks, i),
                                 "target");
    CLEANUP_FREE char *base = t ? vb_replica_image (dir, t, "base") : NULL;
    if (!base)
      return -1;
    n += exists (base);
  }
  return n;
}

/* The top's view never changes while its clusters are copied into the
 * base (the top masks each of them), so an interrupted fold leaves the
 * point as it was, and a new one rewrites the same clusters. */
static int
fold_disk (const char *dir, const char *target)
{
  CLEANUP_FREE char *top = vb_replica_image (dir, target, "");
  CLEANUP_FREE char *base = vb_replica_image (dir, target, "base");

  if (!top || !base)
    return -1;
  if (!exists (base))
    return 0;
  char *const argv[] = { "qemu-img", "commit", "-q", "-d", "-f", "qcow2",
                         top, NULL };
  vb_phase ("fold-begin");
  if (vb_proc_run (argv) < 0 || vb_fsync_file (base) < 0 ||
      move (base, top) < 0)
    return -1;
  vb_phase ("fold-end");
  return 0;
}

static int
mark_folding (const char *dir, struct json_object *j, bool on)
{
  if (on)
    json_object_object_add (j, "folding", json_object_new_int (getpid ()));
  else
    json_object_object_del (j, "folding");
  return vb_journal_write (dir, j);
}

int
vb_journal_fold (const char *dir, struct json_object *j)
{
  struct json_object *disks = json_object_object_get (j, "disks");
  int n = vb_journal_fold_pending (dir, j), r = 0;

  /* After a failover the domain writes into the top. */
  if (n <= 0 || strcmp (vb_journal_state (j), "idle"))
    return n < 0 ? -1 : 0;
  if (mark_folding (dir, j, true) < 0)
    return -1;
  for (size_t i = 0; r == 0 && i < json_object_array_length (disks); i++) {
    const char *t = vb_json_str (json_object_array_get_idx (disks, i),
                                 "target");
    r = fold_disk (dir, t);
  }
  if (r == 0)
    r = vb_fsync_dir (dir);
  if (r < 0) {
    struct vb_error e;
    vb_error_save (&e);
    vb_set_error_code (e.code, e.errnum, "fold the last sync in %s into one "
                       "image: %s; %s stays at its point, and the next sync "
                       "or 'virtback replica apply %s' folds it", dir, e.msg,
                       dir, dir);
  }
  return mark_folding (dir, j, false) < 0 || r < 0 ? -1 : 0;
}

int
vb_journal_recover (const char *dir, struct json_object *j)
{
  const char *s = vb_journal_state (j);

  if (!strcmp (s, "receiving")) {
    vb_info ("discarding the sync that was interrupted while it was "
             "received; %s stays at its last completed point", dir);
    return discard (dir, j);
  }
  if (!strcmp (s, "applying")) {
    vb_info ("finishing the apply of a sync that was interrupted");
    return vb_journal_apply (dir, j);
  }
  return 0;
}

int
vb_replica_apply (const char *dir)
{
  CLEANUP_CLOSE int fd = vb_journal_lock (dir, 0);
  struct json_object *j;
  int r;

  if (fd < 0 || !(j = vb_journal_read (dir)))
    return -1;
  r = vb_journal_recover (dir, j);
  if (r == 0)
    r = vb_journal_fold (dir, j);
  json_object_put (j);
  return r;
}
