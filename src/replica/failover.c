/* SPDX-License-Identifier: GPL-3.0-or-later */
/* failover.c: `virtback replica status` and `virtback failover` on the
 * standby host.  Failover takes DIR's lock, so no sync can start on the
 * images it hands to the new domain, and marks DIR failed-over, which
 * every later receive refuses and under which no fold runs.  See
 * replica.h. */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "common/proc.h"
#include "common/text.h"
#include "replica/internal.h"
#include "replica/replica.h"
#include "restore/restore.h"
#include "virt/virt.h"

struct json_object *
vb_replica_status (const char *dir)
{
  struct json_object *j;
  int busy, pending;

  if (access (dir, F_OK) < 0) {
    vb_set_error_errno (errno, "%s", dir);
    return NULL;
  }
  if (!(j = vb_journal_read (dir)) || (busy = vb_journal_locked (dir)) < 0) {
    json_object_put (j);
    return NULL;
  }
  json_object_object_add (j, "busy", json_object_new_boolean (busy));
  if ((pending = vb_journal_fold_pending (dir, j)) < 0) {
    json_object_put (j);
    return NULL;
  }
  if (pending > 0)
    json_object_object_add (j, "fold", json_object_new_string
                            (busy && vb_json_int (j, "folding", 0) > 0
                             ? "running" : "pending"));
  return j;
}

static void
utc (char *buf, size_t len, int64_t t)
{
  time_t tt = (time_t) t;
  struct tm tm;

  gmtime_r (&tt, &tm);
  strftime (buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static const char *
what (struct json_object *st, bool busy, char *buf, size_t len)
{
  const char *s = vb_journal_state (st);
  const char *next = vb_json_str (json_object_object_get (st, "pending"),
                                  "point");
  const char *fold = vb_json_str (st, "fold");

  if (!strcmp (s, "failed-over"))
    snprintf (buf, len, "failed over to domain '%s'",
              vb_json_str (st, "failover") ? vb_json_str (st, "failover") : "?");
  else if (!strcmp (s, "idle") && fold && !strcmp (fold, "running"))
    snprintf (buf, len, "idle, folding the last sync into one image per "
              "disk (pid %lld)", (long long) vb_json_int (st, "folding", 0));
  else if (!strcmp (s, "idle") && fold)
    snprintf (buf, len, "idle, the last sync not folded into one image per "
              "disk yet%s", busy ? " (a run holds the lock)" : ": the next "
              "sync or 'virtback replica apply' folds it");
  else if (!strcmp (s, "idle"))
    snprintf (buf, len, busy ? "idle (a run holds the lock)" : "idle");
  else if (busy)
    snprintf (buf, len, "sync of %s in progress (%s)", next ? next : "?", s);
  else if (!strcmp (s, "receiving"))
    snprintf (buf, len, "interrupted while receiving %s: the next sync "
              "discards it", next ? next : "?");
  else
    snprintf (buf, len, "interrupted while applying %s: the next sync or "
              "'virtback replica apply' finishes it", next ? next : "?");
  return buf;
}

char *
vb_replica_status_text (struct json_object *st, const char *dir)
{
  struct json_object *disks = json_object_object_get (st, "disks");
  bool busy = json_object_get_boolean (json_object_object_get (st, "busy"));
  char taken[64] = "", done[64] = "", state[512];
  CLEANUP_FREE char *dl = strdup ("");
  const char *point = vb_json_str (st, "point");

  utc (taken, sizeof taken, vb_json_int (st, "time", 0));
  utc (done, sizeof done, vb_json_int (st, "completed", 0));
  for (size_t i = 0; dl && disks && i < json_object_array_length (disks); i++) {
    struct json_object *d = json_object_array_get_idx (disks, i);
    char *n = vb_xasprintf ("%s%s%s (%lld bytes)", dl, *dl ? ", " : "",
                            vb_json_str (d, "target"),
                            (long long) vb_json_int (d, "size", 0));
    free (dl);
    dl = n;
  }
  return vb_xasprintf ("directory: %s\ndomain:    %s (uuid %s)\n"
                       "point:     %s%s%s%s%s\nstate:     %s\ndisks:     %s\n",
                       dir, vb_json_str (st, "domain") ? vb_json_str (st, "domain")
                       : "none yet", vb_json_str (st, "uuid")
                       ? vb_json_str (st, "uuid") : "-",
                       point ? point : "none completed yet",
                       point ? ", taken " : "", point ? taken : "",
                       point ? ", completed " : "", point ? done : "",
                       what (st, busy, state, sizeof state),
                       dl && *dl ? dl : "none");
}

/* ---- failover ---- */

static int
ready (const char *dir, struct json_object *j)
{
  const char *s = vb_journal_state (j);

  if (!strcmp (s, "applying")) {
    vb_set_error ("a sync into %s stopped while it was being applied, so "
                  "its images are not at one point: run 'virtback replica "
                  "apply %s' to finish it, then failover again", dir, dir);
    return -1;
  }
  if (!strcmp (s, "failed-over")) {
    vb_set_error ("%s was failed over already, to domain '%s'", dir,
                  vb_json_str (j, "failover") ? vb_json_str (j, "failover")
                                              : "?");
    return -1;
  }
  /* An interrupted receive never touched the images. */
  if (vb_journal_recover (dir, j) < 0)
    return -1;
  if (!vb_json_str (j, "point")) {
    vb_set_error ("%s holds no completed sync yet: run virtback replicate "
                  "first", dir);
    return -1;
  }
  return 0;
}

static char *
adjusted_xml (const char *dir, struct json_object *j, const char *name)
{
  CLEANUP_FREE char *path = vb_path_join (dir, "domain.xml");
  CLEANUP_FREE char *xml = NULL;
  struct json_object *disks = json_object_object_get (j, "disks");
  size_t n = disks ? json_object_array_length (disks) : 0, len;
  CLEANUP_FREE struct vb_xml_disk *xd = calloc (n + 1, sizeof *xd);
  CLEANUP_STRV char **paths = calloc (n + 1, sizeof *paths);

  if (!path || !xd || !paths || !(xml = vb_read_file (path, &len)))
    return NULL;
  for (size_t i = 0; i < n; i++) {
    xd[i].target = vb_json_str (json_object_array_get_idx (disks, i), "target");
    if (!xd[i].target ||
        !(paths[i] = vb_replica_image (dir, xd[i].target, "")))
      return NULL;
    xd[i].path = paths[i];
    xd[i].format = "qcow2";
  }
  return vb_adjust_domain_xml (xml, len, xd, n, name);
}

/* QEMU opens the images by path: it must be able to pass DIR (group
 * libvirt-qemu, 0710), libvirt gives it the images themselves. */
static int
let_qemu_in (const char *dir)
{
  struct group *g = getgrnam ("libvirt-qemu");

  if (!g) {
    vb_set_error ("no group libvirt-qemu: is libvirt's QEMU driver installed?");
    return -1;
  }
  if (chown (dir, -1, g->gr_gid) < 0 || chmod (dir, 0710) < 0) {
    vb_set_error_errno (errno, "%s", dir);
    return -1;
  }
  return 0;
}

static int
start (const struct vb_failover_opts *o, struct json_object *j,
       const char *name, char **made)
{
  CLEANUP_FREE char *xml = NULL;

  int exists = vb_domain_exists (o->uri, name);

  if (exists == 1)
    vb_set_error ("a domain named '%s' exists already in libvirt: give "
                  "another name with -N NAME", name);
  if (exists != 0 || let_qemu_in (o->dir) < 0 ||
      !(xml = adjusted_xml (o->dir, j, name)) ||
      !(*made = vb_domain_create (o->uri, xml)))
    return -1;
  json_object_object_add (j, "state", json_object_new_string ("failed-over"));
  json_object_object_add (j, "failover", json_object_new_string (*made));
  json_object_object_del (j, "folding");
  return vb_journal_write (o->dir, j);
}

/* The pid of a detached fold holding DIR's lock (the leader of its own
 * session, so its qemu-img goes with it, and a `virtback replica`
 * process: a fold killed before it cleared "folding" leaves a pid that
 * another program may have by now), or 0. */
static pid_t
running_fold (struct json_object *st)
{
  pid_t pid = (pid_t) vb_json_int (st, "folding", 0);

  if (pid <= 0 || strcmp (vb_journal_state (st), "idle") ||
      getpgid (pid) != pid || !vb_proc_has_arg (pid, "replica"))
    return 0;
  return pid;
}

/* DIR's lock.  A fold holding it is stopped: killed anywhere it leaves
 * the point as it was, and the domain boots on the chain.  The lock is
 * ours only once every process of the fold is gone, so none renames an
 * image under the domain. */
static int
lock_stopping_fold (const char *dir)
{
  struct timespec ts = { 0, 100000000 };
  struct json_object *st = NULL;
  bool killed = false;
  int fd;

  for (int i = 0; (fd = vb_journal_lock (dir, 0)) < 0 && i < 100; i++) {
    pid_t pid;
    json_object_put (st);
    st = vb_journal_read (dir);
    if (st && (pid = running_fold (st)) > 0) {
      kill (-pid, SIGKILL);
      killed = true;
    }
    /* A fold in its first 0.5 s may not have noted its pid yet. */
    else if (!killed && (i >= 5 || !st ||
                         strcmp (vb_journal_state (st), "idle") ||
                         vb_journal_fold_pending (dir, st) <= 0))
      break;
    nanosleep (&ts, NULL);
  }
  if (fd < 0 && st && !strcmp (vb_journal_state (st), "idle"))
    vb_set_error ("another virtback run holds the lock of %s (%s): wait for "
                  "it to end, then failover again", dir,
                  killed ? "a fold that did not end when killed"
                  : "idle, no sync in progress");
  else if (fd < 0)
    vb_set_error ("a sync into %s is running (%s): wait for it to end, or "
                  "stop virtback replicate on the source, then failover "
                  "again", dir, st ? vb_journal_state (st) : "?");
  json_object_put (st);
  return fd;
}

char *
vb_failover (const struct vb_failover_opts *o)
{
  CLEANUP_CLOSE int fd = -1;
  struct json_object *j = NULL;
  char *made = NULL;
  const char *name;

  if (access (o->dir, F_OK) < 0) {
    vb_set_error_errno (errno, "%s", o->dir);
    return NULL;
  }
  if ((fd = lock_stopping_fold (o->dir)) < 0)
    return NULL;
  if (!(j = vb_journal_read (o->dir)) || ready (o->dir, j) < 0)
    goto out;
  name = o->name ? o->name : vb_json_str (j, "domain");
  if (!name) {
    vb_set_error ("%s does not name its domain: give -N NAME", o->dir);
    goto out;
  }
  if (start (o, j, name, &made) < 0) {
    free (made);
    made = NULL;
  }
 out:
  json_object_put (j);
  return made;
}
