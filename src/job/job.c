/* SPDX-License-Identifier: GPL-3.0-or-later */
/* job.c: start, finish, reap and list pull-backup jobs (job.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backupset/backupset.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/text.h"
#include "job/internal.h"
#include "nbd/nbd.h"
#include "serve/serve.h"
#include "target/target.h"

struct jstart {
  const struct vb_job_opts *o;
  const char *prefix, *control;
  struct vb_domain *d;
  struct vb_target *lt;        /* only for the per-domain lock */
  struct vb_tlock *lock;
  struct vb_jplan plan;
  char *id, *rundir, *socket;
  const char **disks;          /* targets, NULL-terminated */
  struct json_object *rec;
  bool recorded;
};

/* ---- ending a job: shared by a failed start, finish and the reaper ---- */

static bool
job_is_ours (struct vb_domain *d, const char *socket)
{
  CLEANUP_FREE char *jx = NULL, *sock = NULL;

  if (vb_job_active (d) != 1 || !(jx = vb_backup_job_xml (d)))
    return false;
  sock = vb_xml_string (jx, "string(/domainbackup/server/@socket)");
  return sock && socket && !strcmp (sock, socket);
}

/* 0 when REC's run directory is gone; -1 when something is still in
 * it (warned about when LAST). */
static int
remove_rundir (struct json_object *rec, bool last)
{
  const char *dir = vb_jstr (rec, "rundir");
  struct json_object *disks;
  char p[4096];

  if (!dir)
    return 0;
  snprintf (p, sizeof p, "%s/nbd.sock", dir);
  unlink (p);
  if (json_object_object_get_ex (rec, "disks", &disks)) {
    json_object_object_foreach (disks, name, v) {
      (void) v;
      snprintf (p, sizeof p, "%s/scratch-%s.qcow2", dir, name);
      unlink (p);
    }
  }
  if (rmdir (dir) == 0 || errno == ENOENT)
    return 0;
  if (last)
    vb_warn ("could not remove %s: %s", dir, strerror (errno));
  return -1;
}

static int
delete_tickets (struct json_object *rec)
{
  const char *sock = vb_jstr (rec, "control_socket");
  struct json_object *disks;
  int r = 0;

  if (!json_object_object_get_ex (rec, "disks", &disks))
    return 0;
  json_object_object_foreach (disks, name, v) {
    const char *t = vb_jstr (v, "ticket");
    (void) name;
    if (t && vb_jctl_delete (sock, t) < 0)
      r = -1;
  }
  return r;
}

static bool
own_checkpoint (struct vb_domain *d, struct json_object *rec)
{
  const char *cp = vb_jstr (rec, "checkpoint");
  const char *xml = vb_jstr (rec, "checkpoint_xml");

  if (!cp || !vb_checkpoint_exists (d, cp))
    return false;
  return !xml || vb_checkpoint_matches (d, cp, xml) == 1;
}

/* End REC's libvirt job (if D, its domain, still runs it) and delete its
 * tickets; unless KEEP, also its checkpoint.  Leaves the record.  The
 * plan picked a checkpoint name that no checkpoint had, under the
 * domain's lock: one of that name without its XML noted is the job's
 * (its start died inside virDomainBackupBegin). */
static int
end_job (struct vb_domain *d, struct json_object *rec, bool keep)
{
  const char *cp = vb_jstr (rec, "checkpoint");

  /* A start killed during its backup begin leaves libvirtd finishing it:
   * wait for the job that makes, and look again while something still
   * writes into the run directory, or the job and its checkpoint would
   * appear after we looked. */
  for (int i = 0;; i++) {
    if (d && vb_job_settle (d, 30000) < 0)
      return -1;
    if (d && job_is_ours (d, vb_jstr (rec, "socket")) &&
        vb_backup_end (d) < 0)
      return -1;
    if (remove_rundir (rec, i == 2) == 0 || i == 2)
      break;
    sleep (1);
  }
  if (delete_tickets (rec) < 0)
    return -1;
  if (d && !keep && own_checkpoint (d, rec) &&
      vb_jcheckpoint_delete (d, cp) < 0)
    return -1;
  return 0;
}

/* ---- start ---- */

static int
select_disks (struct jstart *x)
{
  size_t n = 0;

  if (!(x->disks = calloc (x->d->ndisks + 1, sizeof *x->disks))) {
    vb_set_error ("out of memory");
    return -1;
  }
  for (size_t i = 0; i < x->d->ndisks; i++)
    if (x->d->disks[i].skip == VB_DISK_BACKUP)
      x->disks[n++] = x->d->disks[i].target;
  if (n == 0) {
    vb_set_error ("domain '%s' has no disk that can carry a checkpoint "
                  "(qcow2): nothing to back up", x->d->name);
    return -1;
  }
  return 0;
}

static int
open_domain (struct jstart *x)
{
  if (!(x->d = vb_domain_open (x->o->uri, x->o->domain, false)))
    return -1;
  if (!x->d->running) {
    vb_set_error ("domain '%s' is not running: a pull-backup job needs a "
                  "running domain (back it up with 'virtback backup')",
                  x->d->name);
    return -1;
  }
  if (!(x->lt = vb_target_dir_open (vb_job_run_dir (), NULL)) ||
      !(x->lock = vb_target_lock (x->lt, x->d->uuid, x->d->name)))
    return -1;
  /* Before the plan: a full would delete checkpoints under a running job. */
  if (vb_job_active (x->d) != 0) {
    vb_set_error ("domain '%s' is busy with another job: 'virtback job "
                  "list' shows virtback's jobs, 'virtback job finish ID' "
                  "ends one", x->d->name);
    return -1;
  }
  return select_disks (x);
}

/* QEMU binds the socket and writes the scratch images here; whoever can
 * connect to the socket can read the disks, so only root and QEMU may. */
static int
make_rundir (struct jstart *x)
{
  const char *base = x->o->scratchdir ? x->o->scratchdir : "/var/tmp";
  gid_t gid;

  if (vb_domain_qemu_gid (x->d, &gid) < 0 ||
      !(x->rundir = vb_xasprintf ("%s/virtback-job.%s", base, x->id)) ||
      !(x->socket = vb_path_join (x->rundir, "nbd.sock")))
    return -1;
  if (mkdir (x->rundir, 0700) < 0) {
    vb_set_error_errno (errno, "cannot create %s (-S)", x->rundir);
    free (x->rundir);
    x->rundir = NULL;
    return -1;
  }
  if (chown (x->rundir, -1, gid) < 0 || chmod (x->rundir, 0770) < 0) {
    vb_set_error_errno (errno, "%s", x->rundir);
    return -1;
  }
  return 0;
}

static void
add_str (struct json_object *o, const char *k, const char *v)
{
  json_object_object_add (o, k, v ? json_object_new_string (v) : NULL);
}

static int
new_record (struct jstart *x)
{
  int timeout = x->o->timeout > 0 ? x->o->timeout : VB_JOB_TIMEOUT;
  long long now = (long long) time (NULL);
  struct json_object *r = x->rec = json_object_new_object ();

  add_str (r, "id", x->id);
  add_str (r, "domain", x->d->name);
  add_str (r, "uuid", x->d->uuid);
  add_str (r, "uri", x->o->uri);
  add_str (r, "prefix", x->prefix);
  add_str (r, "level", x->o->inc ? "inc" : "full");
  add_str (r, "checkpoint", x->plan.checkpoint);
  add_str (r, "parent", x->plan.parent);
  json_object_object_add (r, "created", json_object_new_int64 (now));
  json_object_object_add (r, "timeout", json_object_new_int (timeout));
  json_object_object_add (r, "expires", json_object_new_int64 (now + timeout));
  add_str (r, "rundir", x->rundir);
  add_str (r, "socket", x->socket);
  add_str (r, "control_socket", x->control);
  json_object_object_add (r, "disks", json_object_new_object ());
  if (vb_jrec_save (r) < 0)
    return -1;
  x->recorded = true;
  return 0;
}

/* The checkpoint's XML (name and creation time) in the record, so that
 * an expired job deletes its own checkpoint, never a later one of the
 * same name (a full backup after the domain restarted). */
static int
note_checkpoint (struct jstart *x)
{
  char *xml = vb_checkpoint_xml (x->d, x->plan.checkpoint);

  if (!xml)
    return -1;
  add_str (x->rec, "checkpoint_xml", xml);
  free (xml);
  return vb_jrec_save (x->rec);
}

/* Freeze, begin, thaw: the job's point in time is its start. */
static int
begin (struct jstart *x)
{
  struct vb_backup_spec spec = {
    .socket_path = x->socket, .scratch_dir = x->rundir,
    .incremental = x->plan.parent, .new_checkpoint = x->plan.checkpoint,
    .disks = x->disks, .description = VB_CHECKPOINT_OF_JOB,
  };
  bool frozen = false;
  int r;

  if (!x->o->no_freeze) {
    if (vb_fsfreeze (x->d) < 0)
      vb_warn ("guest agent did not freeze the filesystems (%s): the "
               "backup is crash-consistent", vb_get_error ());
    else
      frozen = true;
  }
  r = vb_backup_begin (x->d, &spec);
  if (frozen)
    vb_fsthaw (x->d);
  if (r < 0 && vb_get_error_code () == VB_ERR_BITMAP)
    vb_prefix_error ("the chain cannot continue: start a full job (-l full)");
  return r < 0 ? -1 : note_checkpoint (x);
}

static char *
ticket_body (struct jstart *x, const char *tid, const char *disk,
             uint64_t size)
{
  struct json_object *b = json_object_new_object (), *ops;
  CLEANUP_FREE char *url = vb_xasprintf ("nbd:unix:%s:exportname=%s",
                                         x->socket, disk);
  char *s;

  ops = json_object_new_array ();
  json_object_array_add (ops, json_object_new_string ("read"));
  add_str (b, "uuid", tid);
  json_object_object_add (b, "size", json_object_new_int64 ((int64_t) size));
  add_str (b, "url", url);
  json_object_object_add (b, "timeout", json_object_new_int64 (
                            vb_jint (x->rec, "timeout")));
  json_object_object_add (b, "ops", ops);
  json_object_object_add (b, "sparse", json_object_new_boolean (1));
  json_object_object_add (b, "dirty", json_object_new_boolean (x->o->inc));
  add_str (b, "transfer_id", x->id);
  s = url ? strdup (json_object_to_json_string_ext (
                      b, JSON_C_TO_STRING_PLAIN |
                      JSON_C_TO_STRING_NOSLASHESCAPE)) : NULL;
  json_object_put (b);
  if (!s)
    vb_set_error ("out of memory");
  return s;
}

static int
export_size (struct jstart *x, const char *disk, uint64_t *size)
{
  struct vb_nbd *n = vb_nbd_connect (x->socket, disk, NULL, NULL);

  if (!n) {
    vb_prefix_error ("disk %s: the job's NBD export", disk);
    return -1;
  }
  *size = n->size;
  vb_nbd_close (n);
  return 0;
}

/* The ticket is in the record before serve has it, so that whoever ends
 * the job also deletes a ticket whose PUT was cut short. */
static int
add_ticket (struct jstart *x, struct json_object *disks, const char *disk)
{
  const char *base = x->o->base_url ? x->o->base_url : VB_JOB_BASE_URL;
  CLEANUP_FREE char *tid = vb_job_random_hex (16);
  CLEANUP_FREE char *body = NULL, *url = NULL;
  struct json_object *e;
  uint64_t size;

  if (!tid || export_size (x, disk, &size) < 0 ||
      !(body = ticket_body (x, tid, disk, size)) ||
      !(url = vb_xasprintf ("%s/images/%s", base, tid)))
    return -1;
  e = json_object_new_object ();
  add_str (e, "ticket", tid);
  add_str (e, "transfer_url", url);
  json_object_object_add (e, "size", json_object_new_int64 ((int64_t) size));
  json_object_object_add (disks, disk, e);
  if (vb_jrec_save (x->rec) < 0)
    return -1;
  return vb_jctl_put (x->control, tid, body);
}

static char *
start_json (struct jstart *x)
{
  struct json_object *o = json_object_new_object (), *disks, *out, *rd;
  char *s;

  json_object_object_get_ex (x->rec, "disks", &rd);
  add_str (o, "id", x->id);
  add_str (o, "domain", x->d->name);
  add_str (o, "checkpoint", x->plan.checkpoint);
  add_str (o, "parent", x->plan.parent);
  json_object_object_add (o, "expires", json_object_new_int64 (
                            vb_jint (x->rec, "expires")));
  disks = json_object_new_object ();
  json_object_object_foreach (rd, name, v) {
    out = json_object_new_object ();
    add_str (out, "transfer_url", vb_jstr (v, "transfer_url"));
    json_object_object_add (out, "size",
                            json_object_new_int64 (vb_jint (v, "size")));
    json_object_object_add (disks, name, out);
  }
  json_object_object_add (o, "disks", disks);
  s = strdup (json_object_to_json_string_ext (
                o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put (o);
  if (!s)
    vb_set_error ("out of memory");
  return s;
}

static int
check_cancel (struct jstart *x)
{
  if (!x->o->cancel || !*x->o->cancel)
    return 0;
  vb_set_error_code (VB_ERR_CANCELLED, 0, "interrupted: no job was started "
                     "and nothing of it is left");
  return -1;
}

static int
start_steps (struct jstart *x, char **json)
{
  struct json_object *disks;

  /* Before the domain is touched: a full deletes checkpoints. */
  if (vb_jctl_probe (x->control) < 0 || open_domain (x) < 0 ||
      vb_jplan_make (x->d, x->o, x->prefix, &x->plan) < 0)
    return -1;
  vb_info ("%s job %s on domain '%s'%s%s, checkpoint %s",
           x->o->inc ? "inc" : "full", x->id, x->d->name,
           x->plan.parent ? " since " : "",
           x->plan.parent ? x->plan.parent : "", x->plan.checkpoint);
  if (check_cancel (x) < 0 || make_rundir (x) < 0 || new_record (x) < 0 ||
      check_cancel (x) < 0 || begin (x) < 0)
    return -1;
  json_object_object_get_ex (x->rec, "disks", &disks);
  for (const char **t = x->disks; *t; t++)
    if (check_cancel (x) < 0 || add_ticket (x, disks, *t) < 0)
      return -1;
  if (check_cancel (x) < 0)
    return -1;
  add_str (x->rec, "state", "running");
  if (vb_jrec_save (x->rec) < 0)
    return -1;
  return (*json = start_json (x)) ? 0 : -1;
}

static void
start_cleanup (struct jstart *x, bool failed)
{
  struct vb_error err;

  vb_error_save (&err);
  if (failed && x->recorded) {
    if (end_job (x->d, x->rec, false) < 0)
      vb_warn ("could not end the failed job %s: %s (the next 'virtback "
               "job list' or start tries again)", x->id, vb_get_error ());
    else
      vb_jrec_remove (x->id);
  }
  else if (failed && x->rundir)
    rmdir (x->rundir);
  json_object_put (x->rec);
  free (x->rundir);
  free (x->socket);
  free (x->disks);
  free (x->id);
  vb_jplan_free (&x->plan);
  vb_target_unlock (x->lock);
  vb_target_close (x->lt);
  vb_domain_close (x->d);
  vb_error_restore (&err);
}

int
vb_job_start (const struct vb_job_opts *o, char **json)
{
  struct jstart x = {
    .o = o, .prefix = o->prefix ? o->prefix : "virtback",
    .control = o->control_socket ? o->control_socket : VB_SERVE_CONTROL,
  };
  int r;

  *json = NULL;
  if (!vb_bset_safe_component (x.prefix)) {
    vb_set_error ("invalid checkpoint prefix '%s'", x.prefix);
    return -1;
  }
  if (vb_job_reap () < 0)
    vb_warn ("expired jobs were not looked at: %s", vb_get_error ());
  if (!(x.id = vb_job_random_hex (8)))
    return -1;
  r = start_steps (&x, json);
  start_cleanup (&x, r < 0);
  return r;
}

/* ---- finish, reap, list ---- */

/* Open REC's domain and take its lock; *D NULL when the domain is gone
 * (its job and checkpoints went with it). */
static int
open_rec_domain (struct json_object *rec, struct vb_domain **d,
                 struct vb_target **lt, struct vb_tlock **lock)
{
  const char *uuid = vb_jstr (rec, "uuid"), *name = vb_jstr (rec, "domain");
  int e = vb_domain_exists (vb_jstr (rec, "uri"), name ? name : "");
  CLEANUP_FREE char *path = NULL;

  *d = NULL;
  if (e <= 0)
    return e;
  if (!(*d = vb_domain_open (vb_jstr (rec, "uri"), name, false)))
    return -1;
  if (!uuid || strcmp ((*d)->uuid, uuid)) {
    vb_domain_close (*d);      /* another domain now has that name */
    *d = NULL;
    return 0;
  }
  if (!(*lt = vb_target_dir_open (vb_job_run_dir (), NULL)) ||
      !(*lock = vb_target_lock (*lt, uuid, name)))
    return -1;
  /* A finish or reap that held the lock before us may have ended it. */
  path = vb_xasprintf ("%s/%s.json", vb_job_run_dir (), vb_jstr (rec, "id"));
  if (!path || access (path, F_OK) < 0) {
    vb_set_error ("job %s has just been ended by another virtback run",
                  vb_jstr (rec, "id"));
    return -1;
  }
  return 0;
}

static void
close_rec_domain (struct vb_domain *d, struct vb_target *lt,
                  struct vb_tlock *lock)
{
  vb_target_unlock (lock);
  vb_target_close (lt);
  vb_domain_close (d);
}

/* Finish: the job must still be running, or the client may have read
 * less than the point: then it is ended as failed. */
static int
finish_rec (struct vb_domain *d, struct json_object *rec)
{
  const char *id = vb_jstr (rec, "id"), *cp = vb_jstr (rec, "checkpoint");

  if (!d || !job_is_ours (d, vb_jstr (rec, "socket"))) {
    if (end_job (d, rec, false) == 0)
      vb_jrec_remove (id);
    vb_set_error ("the backup job of job %s is gone (domain stopped or "
                  "job aborted): what was read may be incomplete, so its "
                  "checkpoint is dropped; start the job again", id);
    return -1;
  }
  if (end_job (d, rec, true) < 0)
    return -1;
  /* The job is over either way.  The chain keeps its earlier points: an
   * inc job goes on from them (their changes include this job's), or
   * refuses when this job was a full, which deleted them. */
  if (vb_jchain_record (d, vb_jstr (rec, "prefix"), cp,
                        vb_jstr (rec, "parent")) < 0) {
    vb_prefix_error ("job %s ended, but its checkpoint %s was not recorded",
                     id, cp);
    vb_jrec_remove (id);
    return -1;
  }
  return vb_jrec_remove (id);
}

int
vb_job_finish (const char *id)
{
  struct json_object *rec = vb_jrec_load (id);
  struct vb_domain *d = NULL;
  struct vb_target *lt = NULL;
  struct vb_tlock *lock = NULL;
  int r = -1;

  if (!rec)
    return -1;
  if (open_rec_domain (rec, &d, &lt, &lock) == 0)
    r = finish_rec (d, rec);
  close_rec_domain (d, lt, lock);
  json_object_put (rec);
  return r;
}

/* A start holds the domain's lock until its record says "running": a
 * record without it and without the lock is a start that died. */
static bool
dead_start (struct json_object *rec)
{
  const char *state = vb_jstr (rec, "state");
  CLEANUP_TARGET struct vb_target *lt = NULL;

  if (state && !strcmp (state, "running"))
    return false;
  lt = vb_target_dir_open (vb_job_run_dir (), NULL);
  return lt && vb_target_locked (lt, vb_jstr (rec, "uuid")) == 0;
}

/* When ticket TID on serve's control socket CTL ends, in wall-clock
 * seconds; 0 when serve does not have it.  serve's "expires" is on the
 * monotonic clock (as imageio's is), which every process of this host
 * shares, and the control socket is on this host. */
static long long
ticket_end (const char *ctl, const char *tid)
{
  struct json_object *t = ctl && tid ? vb_jctl_get (ctl, tid) : NULL;
  struct timespec mono;
  long long end = 0;

  if (t && clock_gettime (CLOCK_MONOTONIC, &mono) == 0)
    end = (long long) time (NULL) + vb_jint (t, "expires")
          - (long long) mono.tv_sec;
  json_object_put (t);
  return end;
}

/* A client may extend the job's tickets (PATCH /tickets/ID, as oVirt's
 * backup flow does while it reads): the job must not end before they
 * do.  True when a ticket outlives NOW; REC's "expires" then moves to
 * the last ticket's end, saved under the domain's lock so that a finish
 * running meanwhile is never undone by a stale record. */
static bool
kept_by_tickets (struct json_object *rec, long long now)
{
  const char *ctl = vb_jstr (rec, "control_socket");
  CLEANUP_TARGET struct vb_target *lt = NULL;
  CLEANUP_FREE char *path = NULL;
  struct json_object *disks;
  struct vb_tlock *lock;
  long long end = 0;

  if (!json_object_object_get_ex (rec, "disks", &disks))
    return false;
  json_object_object_foreach (disks, name, v) {
    long long e = ticket_end (ctl, vb_jstr (v, "ticket"));

    (void) name;
    end = e > end ? e : end;
  }
  if (end <= now)
    return false;
  json_object_object_add (rec, "expires", json_object_new_int64 (end));
  path = vb_xasprintf ("%s/%s.json", vb_job_run_dir (), vb_jstr (rec, "id"));
  if ((lt = vb_target_dir_open (vb_job_run_dir (), NULL))
      && (lock = vb_target_lock (lt, vb_jstr (rec, "uuid"),
                                 vb_jstr (rec, "domain")))) {
    if (path && access (path, F_OK) == 0 && vb_jrec_save (rec) < 0)
      vb_warn ("job %s: %s", vb_jstr (rec, "id"), vb_get_error ());
    vb_target_unlock (lock);
  }
  return true;
}

/* Is REC's job to be ended now? */
static bool
job_due (struct json_object *rec, long long now)
{
  const char *state = vb_jstr (rec, "state");

  if (vb_jint (rec, "expires") > now)
    return dead_start (rec);
  return !(state && !strcmp (state, "running") && kept_by_tickets (rec, now));
}

static int
reap_one (const char *id, long long now)
{
  struct json_object *rec = vb_jrec_load (id);
  struct vb_domain *d = NULL;
  struct vb_target *lt = NULL;
  struct vb_tlock *lock = NULL;
  int r = 0;

  if (rec && job_due (rec, now)) {
    r = -1;
    if (open_rec_domain (rec, &d, &lt, &lock) == 0 &&
        end_job (d, rec, false) == 0 && vb_jrec_remove (id) == 0) {
      vb_info ("ended job %s of domain '%s': %s", id,
               vb_jstr (rec, "domain"), vb_jint (rec, "expires") <= now ?
               "its timeout passed" : "its start did not complete");
      r = 1;
    }
    if (r < 0)
      vb_warn ("job %s: %s", id, vb_get_error ());
    close_rec_domain (d, lt, lock);
  }
  json_object_put (rec);
  return r;
}

int
vb_job_reap (void)
{
  CLEANUP_STRV char **ids = vb_jrec_ids ();
  long long now = (long long) time (NULL);
  int n = 0;

  if (!ids)
    return -1;
  for (char **i = ids; *i; i++)
    if (reap_one (*i, now) > 0)
      n++;
  return n;
}

char *
vb_job_list (void)
{
  CLEANUP_STRV char **ids = NULL;
  struct json_object *a;
  char *s;

  if (vb_job_reap () < 0 || !(ids = vb_jrec_ids ()))
    return NULL;
  a = json_object_new_array ();
  for (char **i = ids; *i; i++) {
    struct json_object *rec = vb_jrec_load (*i);
    if (rec)
      json_object_array_add (a, rec);
  }
  s = strdup (json_object_to_json_string_ext (
                a, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put (a);
  if (!s)
    vb_set_error ("out of memory");
  return s;
}
