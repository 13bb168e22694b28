/* SPDX-License-Identifier: GPL-3.0-or-later */
/* journal.c: the standby directory's state.json and lock, and the apply
 * step that moves a received sync into the images.  See replica.h.
 *
 * Apply is a list of steps each of which is either done or can be done
 * again with the same result: qemu-img commit of an overlay rewrites the
 * same clusters into its base, and the overlay is removed only after the
 * commit returned; a new image is renamed only if it is still there.  So
 * "applying" in the journal means "run the steps", however far an earlier
 * try got. */
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

static int
apply_disk (const char *dir, const char *target, bool fresh)
{
  CLEANUP_FREE char *base = vb_replica_image (dir, target, "");
  CLEANUP_FREE char *from = vb_replica_image (dir, target,
                                              fresh ? "new" : "sync");

  if (!base || !from)
    return -1;
  if (access (from, F_OK) < 0)
    return 0;                  /* done by an earlier try */
  if (fresh) {
    if (rename (from, base) < 0) {
      vb_set_error_errno (errno, "rename %s to %s", from, base);
      return -1;
    }
    return 0;
  }
  char *const argv[] = { "qemu-img", "commit", "-q", "-d", "-f", "qcow2",
                         from, NULL };
  vb_phase ("commit-begin");
  if (vb_proc_run (argv) < 0)
    return -1;
  vb_phase ("commit-end");
  if (unlink (from) < 0) {
    vb_set_error_errno (errno, "remove %s", from);
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
    if (!t || apply_disk (dir, t, fresh) < 0) {
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
  json_object_put (j);
  return r;
}
