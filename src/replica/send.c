/* SPDX-License-Identifier: GPL-3.0-or-later */
/* send.c: one sync from the source (`virtback replicate`): ask the standby
 * for its last completed point, start a pull-mode backup job from that
 * checkpoint (a full one when the domain does not have it), send each
 * disk's changed blocks as stream frames, and drop the checkpoints of the
 * chain the standby no longer needs once it confirmed the new point.
 * Cleanup (job, checkpoint of a sync that cannot have been applied,
 * private directory, ssh) runs on every exit path.  See replica.h. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libdeflate.h>

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/text.h"
#include "nbd/nbd.h"
#include "replica/internal.h"
#include "replica/replica.h"
#include "replica/ssh.h"
#include "target/target.h"
#include "virt/virt.h"

/* The ssh session to the receiver, kept across the syncs of --interval. */
struct vb_replica_link {
  struct vb_ssh ssh;
  struct vb_wire w;
  bool open;
};

struct sync {
  const struct vb_replicate_opts *o;
  struct vb_replicate_result *r;
  struct vb_domain *d;
  struct vb_target *lt;        /* only for the domain lock */
  struct vb_tlock *lock;
  struct vb_replica_link own;  /* a one-shot sync's session */
  struct vb_replica_link *l;   /* own, or the caller's kept one */
  const char **disks;          /* targets synced, NULL-terminated */
  size_t ndisks;
  char *rundir, *socket;
  char *point, *parent;
  bool frozen, job, made, end_sent;
  double t_job;
  /* the sink */
  uint32_t crc;
  uint64_t bytes;
};

/* ---- the private directory QEMU binds the job's socket in ---- */

static int
make_rundir (struct sync *x)
{
  const char *base = x->o->scratchdir ? x->o->scratchdir : "/var/tmp";
  char pid[32];
  gid_t gid;

  if (vb_domain_qemu_gid (x->d, &gid) < 0)
    return -1;
  if (!(x->rundir = vb_xasprintf ("%s/virtback-replica.XXXXXX", base)) ||
      !mkdtemp (x->rundir)) {
    vb_set_error_errno (errno, "cannot create a private directory in %s", base);
    free (x->rundir);
    x->rundir = NULL;
    return -1;
  }
  if (chown (x->rundir, -1, gid) < 0 || chmod (x->rundir, 0770) < 0) {
    vb_set_error_errno (errno, "%s", x->rundir);
    return -1;
  }
  snprintf (pid, sizeof pid, "%d\n", (int) getpid ());
  if (vb_write_file_atomic (x->rundir, "owner", pid, strlen (pid), 0600) < 0)
    return -1;
  x->socket = vb_path_join (x->rundir, "nbd.sock");
  return x->socket ? 0 : -1;
}

/* Everything QEMU or we put there: socket, scratch images, owner. */
static void
clear_dir (const char *dir)
{
  DIR *dd = opendir (dir);
  struct dirent *e;

  if (!dd)
    return;
  while ((e = readdir (dd)) != NULL)
    if (!strcmp (e->d_name, "nbd.sock") || !strcmp (e->d_name, "owner") ||
        !strncmp (e->d_name, "scratch-", 8) || vb_has_suffix (e->d_name, ".tmp"))
      unlinkat (dirfd (dd), e->d_name, 0);
  closedir (dd);
  if (rmdir (dir) < 0 && errno != ENOENT)
    vb_warn ("could not remove %s: %s", dir, strerror (errno));
}

/* The directory of a job's socket, if a sync of ours made it and its
 * owner is gone (killed): then the job is stale. */
static char *
stale_dir (const char *sock)
{
  CLEANUP_FREE char *dir = sock ? strdup (sock) : NULL;
  CLEANUP_FREE char *owner = NULL, *text = NULL;
  char *slash = dir ? strrchr (dir, '/') : NULL;
  const char *base;
  size_t len;
  int pid;

  if (!slash || strcmp (slash, "/nbd.sock"))
    return NULL;
  *slash = '\0';
  base = vb_path_base (dir);
  if (strncmp (base, "virtback-replica.", 17) || strlen (base) != 23 ||
      !(owner = vb_path_join (dir, "owner")))
    return NULL;
  text = vb_read_file (owner, &len);
  pid = text ? atoi (text) : 0;
  if (pid > 0 && kill (pid, 0) == 0)
    return NULL;
  return STEAL (dir);
}

static char *
job_socket (struct sync *x)
{
  struct timespec ts = { 0, 500000000 };
  CLEANUP_FREE char *jx = NULL;

  /* Right after its client was killed libvirt may not describe the job
   * yet ("backup job data missing"). */
  for (int i = 0; !(jx = vb_backup_job_xml (x->d)) && i < 10; i++)
    nanosleep (&ts, NULL);
  return jx ? vb_xml_string (jx, "string(/domainbackup/server/@socket)")
            : NULL;
}

/* A job of a killed sync is ended here: the lock says no sync of ours
 * runs.  Another job only with -k. */
static int
check_job (struct sync *x)
{
  int active = vb_job_active (x->d);
  CLEANUP_FREE char *sock = NULL, *dir = NULL;

  if (active == 0)
    return 0;
  sock = job_socket (x);
  dir = stale_dir (sock);
  if (!dir && !x->o->kill_stale) {
    vb_set_error ("a job is running on domain '%s'%s%s: wait for it to end, "
                  "or end a stale backup job with -k", x->d->name,
                  sock && *sock ? ", NBD socket " : "", sock ? sock : "");
    return -1;
  }
  vb_info ("ending the stale backup job on domain '%s'", x->d->name);
  if (vb_backup_end (x->d) < 0)
    return -1;
  if (dir)
    clear_dir (dir);
  return 0;
}

/* ---- the chain ---- */

static long
point_number (const char *name)
{
  size_t pl = strlen (VB_REPLICA_PREFIX);
  char *end;
  long n;

  if (!name || strncmp (name, VB_REPLICA_PREFIX ".", pl + 1) ||
      !name[pl + 1])
    return -1;
  n = strtol (name + pl + 1, &end, 10);
  return *end || n < 0 ? -1 : n;
}

static bool
same_disks (struct sync *x, struct json_object *have)
{
  size_t n = have && json_object_is_type (have, json_type_array)
             ? json_object_array_length (have) : 0;

  if (n != x->ndisks)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!vb_json_str (json_object_array_get_idx (have, i), "target") ||
        strcmp (vb_json_str (json_object_array_get_idx (have, i), "target"),
                x->disks[i]))
      return false;
  return true;
}

/* The standby's point is the parent if it is the very checkpoint the
 * domain has under that name (same creation second), for the same disks.
 * EARLY, the checkpoint of the early job, does not count in the numbering. */
static int
choose (struct sync *x, struct json_object *hello, const char *early)
{
  const char *point = vb_json_str (hello, "point");
  const char *uuid = vb_json_str (hello, "uuid");
  CLEANUP_STRV char **cps = vb_checkpoint_list (x->d);
  CLEANUP_FREE char *xml = NULL;
  long max = point_number (point);

  if (!cps)
    return -1;
  for (char **c = cps; *c; c++)
    if (point_number (*c) > max && !(early && !strcmp (*c, early)))
      max = point_number (*c);
  if (!(x->point = vb_xasprintf ("%s.%ld", VB_REPLICA_PREFIX, max + 1)))
    return -1;
  if (point && uuid && !strcmp (uuid, x->d->uuid) &&
      vb_checkpoint_exists (x->d, point) &&
      (xml = vb_checkpoint_xml (x->d, point)) &&
      vb_checkpoint_created (xml) == vb_json_int (hello, "time", -2) &&
      same_disks (x, json_object_object_get (hello, "disks")))
    x->parent = strdup (point);
  else if (point)
    vb_info ("the standby's point %s is not a checkpoint of domain '%s' "
             "(or its disks changed): a full sync", point, x->d->name);
  return 0;
}

static int
select_disks (struct sync *x)
{
  if (!(x->disks = calloc (x->d->ndisks + 1, sizeof *x->disks))) {
    vb_set_error ("out of memory");
    return -1;
  }
  for (size_t i = 0; i < x->d->ndisks; i++) {
    struct vb_disk *k = &x->d->disks[i];
    if (k->skip == VB_DISK_BACKUP)
      x->disks[x->ndisks++] = k->target;
    else if (k->skip == VB_DISK_SKIP_RAW)
      vb_warn ("disk %s is raw (no bitmap): not replicated", k->target);
  }
  if (x->ndisks == 0) {
    vb_set_error ("domain '%s' has no qcow2 disk to replicate", x->d->name);
    return -1;
  }
  return 0;
}

/* ---- the wire sink: stream frames, CRC-32 of every byte ---- */

static int
put (struct sync *x, const void *buf, size_t len)
{
  x->crc = libdeflate_crc32 (x->crc, buf, len);
  return vb_wire_write (&x->l->w, buf, len);
}

static int
put_frame (struct sync *x, enum vb_frame_kind k, uint64_t off, uint64_t len)
{
  char h[VB_FRAME_LEN];

  vb_frame_format (h, k, off, len);
  return put (x, h, sizeof h);
}

static int
s_begin (void *op, uint64_t off, uint64_t len)
{
  return put_frame (op, VB_FRAME_DATA, off, len);
}

static int
s_data (void *op, const void *buf, size_t len, size_t orig)
{
  struct sync *x = op;

  x->bytes += orig;
  return put (x, buf, len);
}

static int
s_end (void *op)
{
  return put (op, VB_TERM, VB_TERM_LEN);
}

static int
s_zero (void *op, uint64_t off, uint64_t len)
{
  return put_frame (op, VB_FRAME_ZERO, off, len);
}

static int
send_line (struct sync *x, struct json_object *o)
{
  int r = vb_wire_send_json (&x->l->w, o);
  json_object_put (o);
  return r;
}

static int
disk_trailer (struct sync *x, const char *target, uint64_t bytes)
{
  struct json_object *e = json_object_new_object ();

  json_object_object_add (e, "disk", json_object_new_string (target));
  json_object_object_add (e, "bytes", json_object_new_int64 ((int64_t) bytes));
  json_object_object_add (e, "crc32", json_object_new_int64 (x->crc));
  return send_line (x, e);
}

static int
copy (struct sync *x, const char *target, struct vb_nbd *n,
      struct vb_mapper *m)
{
  struct vb_sink sink = { .begin_data = s_begin, .data = s_data,
                          .end_data = s_end, .zero = s_zero, .op = x };
  struct vb_copy_opts co = { .cancel = x->o->cancel, .mapper = m };
  struct vb_copy_stats st;
  struct json_object *l = json_object_new_object ();
  uint64_t before = x->bytes;

  json_object_object_add (l, "disk", json_object_new_string (target));
  json_object_object_add (l, "size", json_object_new_int64 ((int64_t) n->size));
  if (send_line (x, l) < 0)
    return -1;
  x->crc = 0;
  if (vb_nbd_copy (n, &sink, &co, &st) < 0 ||
      put_frame (x, VB_FRAME_STOP, 0, 0) < 0)
    return -1;
  return disk_trailer (x, target, x->bytes - before);
}

static int
one_disk (struct sync *x, const char *target)
{
  char ctx[512];
  struct vb_nbd *mn, *rn = NULL;
  struct vb_mapper *m = NULL;
  int r = -1;

  snprintf (ctx, sizeof ctx, "qemu:dirty-bitmap:backup-%s", target);
  if (!(mn = vb_nbd_connect (x->socket, target, x->parent ? ctx : NULL,
                             x->o->cancel)))
    goto out;
  if (!(rn = vb_nbd_connect_reads (x->socket, target, x->o->cancel)) ||
      vb_nbd_add_connections (rn, x->socket, VB_NBD_DEFAULT_CONN) < 0)
    goto out;
  rn->size = mn->size;
  /* The map owns its connection from here on. */
  m = vb_mapper_start (mn, 16384, x->o->cancel, NULL);
  mn = NULL;
  vb_phase ("disk-connected");
  if (m && copy (x, target, rn, m) == 0)
    r = 0;
  vb_phase ("disk-copied");
 out:
  if (r < 0)
    vb_prefix_error ("disk %s", target);
  vb_mapper_free (m);
  vb_nbd_close (mn);
  vb_nbd_close (rn);
  return r;
}

/* ---- the job ---- */

static int
start_job (struct sync *x)
{
  struct vb_backup_spec spec = {
    .socket_path = x->socket, .scratch_dir = x->rundir,
    .incremental = x->parent, .new_checkpoint = x->point,
    .disks = x->disks,
  };
  int r;

  if (!x->o->no_freeze) {
    if (vb_fsfreeze (x->d) < 0)
      vb_warn ("guest agent did not freeze the filesystems (%s): the sync "
               "is crash-consistent", vb_get_error ());
    else
      x->frozen = true;
  }
  vb_phase ("job-begin");
  r = vb_backup_begin (x->d, &spec);
  x->t_job = vb_mono ();
  vb_phase ("job-started");
  if (r == 0)
    x->job = true;
  x->made = r == 0 || vb_checkpoint_exists (x->d, x->point);
  if (x->frozen && vb_fsthaw (x->d) >= 0)
    x->frozen = false;
  return r;
}

static int
send_header (struct sync *x)
{
  CLEANUP_FREE char *cx = vb_checkpoint_xml (x->d, x->point);
  long long created = cx ? vb_checkpoint_created (cx) : -1;
  struct json_object *h = json_object_new_object ();

  if (created < 0) {
    json_object_put (h);
    return -1;
  }
  x->r->point_time = created;
  json_object_object_add (h, "domain", json_object_new_string (x->d->name));
  json_object_object_add (h, "uuid", json_object_new_string (x->d->uuid));
  json_object_object_add (h, "point", json_object_new_string (x->point));
  if (x->parent)
    json_object_object_add (h, "parent", json_object_new_string (x->parent));
  json_object_object_add (h, "time", json_object_new_int64 (created));
  json_object_object_add (h, "xml", json_object_new_string (x->d->xml));
  if (x->l != &x->own && x->o->idle_s > 0)
    json_object_object_add (h, "idle", json_object_new_int64 (x->o->idle_s));
  return send_line (x, h);
}

static struct json_object *
expect (struct sync *x, const char *key)
{
  struct json_object *o = vb_wire_recv_json (&x->l->w);

  if (o && !json_object_object_get (o, key)) {
    json_object_put (o);
    vb_set_error ("the standby answered out of turn (no \"%s\")", key);
    return NULL;
  }
  return o;
}

static void
close_link (struct vb_replica_link *l)
{
  if (l->open)
    vb_wire_free (&l->w);
  l->open = false;
  vb_ssh_free (&l->ssh);
}

/* ssh's stderr log: in the sync's private directory, or beside it for a
 * kept session, which outlives that directory. */
static char *
ssh_log (struct sync *x)
{
  const char *base = x->o->scratchdir ? x->o->scratchdir : "/var/tmp";

  if (x->l == &x->own)
    return vb_path_join (x->rundir, "ssh.log.tmp");
  return vb_xasprintf ("%s/virtback-replica-ssh.%d.log", base, (int) getpid ());
}

static int
open_wire (struct sync *x)
{
  const char *rsh = x->o->rsh ? x->o->rsh : "ssh";
  const char *remote = x->o->remote ? x->o->remote : "virtback";
  bool theirs = vb_ssh_config_ciphers (rsh, remote, x->o->to);
  CLEANUP_STRV char **argv = vb_ssh_argv (rsh, remote, x->o->to, !theirs);
  CLEANUP_FREE char *log = ssh_log (x);

  if (!argv || !log || vb_ssh_start (&x->l->ssh, argv, log) < 0 ||
      vb_wire_init (&x->l->w, x->l->ssh.from, x->l->ssh.to, "the standby") < 0)
    return -1;
  x->l->open = true;
  x->l->w.cancel = x->o->cancel;
  /* ssh's keep-alives watch the link; this bounds a standby that hangs
   * (the answer after the last disk waits for the apply: no bound). */
  x->l->w.timeout_ms = 120000;
  return 0;
}

/* A kept session: the idle receiver takes DIR's lock again and answers
 * with its hello. */
static int
send_again (struct sync *x)
{
  struct json_object *o = json_object_new_object ();

  json_object_object_add (o, "again", json_object_new_boolean (1));
  x->l->w.timeout_ms = 120000;
  return send_line (x, o);
}

static bool
cancelled (struct sync *x)
{
  return x->o->cancel && __atomic_load_n (x->o->cancel, __ATOMIC_RELAXED);
}

/* The standby's hello; a kept session found cut (ssh ended, the receiver
 * gone) is opened again once. */
static struct json_object *
hello_of (struct sync *x, bool kept)
{
  struct json_object *h = expect (x, "version");

  if (h || !kept || cancelled (x))
    return h;
  vb_debug ("the kept session ended (%s): a new one", vb_get_error ());
  close_link (x->l);
  return open_wire (x) < 0 ? NULL : expect (x, "version");
}

/* The standby is nearly always at the domain's newest point of the
 * chain (prune keeps no other), so the job starts from it while ssh logs
 * in; the hello then only confirms the guess. */
static void
guess (struct sync *x)
{
  CLEANUP_STRV char **cps = vb_checkpoint_list (x->d);
  const char *best = NULL;
  long max = -1;

  for (char **c = cps; c && *c; c++)
    if (point_number (*c) > max) {
      max = point_number (*c);
      best = *c;
    }
  x->point = vb_xasprintf ("%s.%ld", VB_REPLICA_PREFIX, max + 1);
  x->parent = best ? strdup (best) : NULL;
  if (!x->point || (best && !x->parent) || start_job (x) < 0)
    vb_debug ("no early job: %s", vb_get_error ());
}

/* A wrong guess is undone as a failed sync's would be. */
static int
undo_guess (struct sync *x)
{
  if (x->job && vb_backup_end (x->d) < 0)
    return -1;
  x->job = false;
  if (x->made && vb_checkpoint_delete (x->d, x->point, false) < 0)
    return -1;
  x->made = false;
  if (x->socket)
    unlink (x->socket);
  return 0;
}

static bool
same_name (const char *a, const char *b)
{
  return a == b || (a && b && !strcmp (a, b));
}

/* The job the hello asks for: the early one if it guessed right. */
static int
settle (struct sync *x, struct json_object *hello)
{
  CLEANUP_FREE char *gp = x->point, *gq = x->parent;
  bool early = x->job;

  x->point = x->parent = NULL;
  if (choose (x, hello, x->made ? gp : NULL) < 0)
    return -1;
  if (early && same_name (gp, x->point) && same_name (gq, x->parent))
    return 0;
  vb_debug ("early job from %s does not fit the standby", gq ? gq : "none");
  CLEANUP_FREE char *mine = x->point;
  x->point = STEAL (gp);
  if (undo_guess (x) < 0)
    return -1;
  free (x->point);
  x->point = STEAL (mine);
  return start_job (x);
}

static int
exchange (struct sync *x)
{
  struct json_object *hello, *ready, *done;
  bool kept = x->l->open;
  int r;

  vb_phase ("ssh-start");
  if (!kept && open_wire (x) < 0)
    return -1;
  /* On a kept session that was cut the hello fails too: hello_of opens
   * a new one. */
  if (kept && send_again (x) < 0)
    vb_debug ("the kept session is cut: %s", vb_get_error ());
  guess (x);
  if (!(hello = hello_of (x, kept)))
    return -1;
  vb_phase ("hello");
  r = settle (x, hello);
  json_object_put (hello);
  if (r < 0 || send_header (x) < 0 || !(ready = expect (x, "ready")))
    return -1;
  vb_phase ("ready");
  json_object_put (ready);
  vb_info ("%s sync of domain '%s'%s%s, point %s", x->parent ? "incremental"
           : "full", x->d->name, x->parent ? " since " : "",
           x->parent ? x->parent : "", x->point);
  for (size_t i = 0; i < x->ndisks; i++)
    if (one_disk (x, x->disks[i]) < 0)
      return -1;
  vb_phase ("data-sent");
  struct json_object *end = json_object_new_object ();
  json_object_object_add (end, "end", json_object_new_boolean (1));
  if (send_line (x, end) < 0)
    return -1;
  x->end_sent = true;
  /* Every byte was read: the job ends while the standby applies. */
  if (vb_backup_end (x->d) < 0)
    return -1;
  vb_phase ("job-ended");
  x->job = false;
  x->l->w.timeout_ms = 0;
  if (!(done = expect (x, "done")))
    return -1;
  vb_phase ("done");
  json_object_put (done);
  return 0;
}

/* The standby is at the new point: no other checkpoint of the chain is
 * needed any more. */
static void
prune (struct sync *x)
{
  CLEANUP_STRV char **cps = vb_checkpoint_list (x->d);

  for (char **c = cps; c && *c; c++)
    if (point_number (*c) >= 0 && strcmp (*c, x->point) &&
        vb_checkpoint_delete (x->d, *c, false) < 0)
      vb_warn ("could not remove checkpoint %s: %s", *c, vb_get_error ());
}

static int
steps (struct sync *x)
{
  vb_phase ("start");
  if (!(x->d = vb_domain_open (x->o->uri, x->o->domain, false)))
    return -1;
  if (!x->d->running) {
    vb_set_error ("domain '%s' is not running: start it (a shut-off domain "
                  "does not change, so its standby is current)", x->d->name);
    return -1;
  }
  if (!(x->lt = vb_target_dir_open ("/var/tmp", NULL)) ||
      !(x->lock = vb_target_lock (x->lt, x->d->uuid, x->d->name)) ||
      check_job (x) < 0 || select_disks (x) < 0 || make_rundir (x) < 0)
    return -1;
  if (exchange (x) < 0)
    return -1;
  prune (x);
  vb_phase ("pruned");
  return 0;
}

static void
cleanup (struct sync *x, bool failed)
{
  struct vb_error e;
  int rc;

  vb_error_save (&e);
  if (x->frozen)
    vb_fsthaw (x->d);
  if (x->job && vb_backup_end (x->d) < 0)
    vb_warn ("could not end the backup job: %s", vb_get_error ());
  /* After "end" the standby may have applied the point: keep it, the
   * next sync learns which point the standby is at. */
  if (failed && x->made && !x->end_sent &&
      vb_checkpoint_delete (x->d, x->point, false) < 0)
    vb_warn ("could not remove checkpoint %s: %s", x->point, vb_get_error ());
  /* A kept session stays open after a sync that succeeded only. */
  if (failed || x->l == &x->own) {
    rc = vb_ssh_end (&x->l->ssh);
    vb_error_restore (&e);
    if (failed && rc != 0 && e.code != VB_ERR_CANCELLED)
      vb_ssh_explain (&x->l->ssh, rc);
    vb_error_save (&e);
    close_link (x->l);
  }
  if (x->rundir)
    clear_dir (x->rundir);
  vb_target_unlock (x->lock);
  vb_target_close (x->lt);
  vb_domain_close (x->d);
  free (x->disks);
  free (x->rundir);
  free (x->socket);
  vb_error_restore (&e);
}

int
vb_replicate (const struct vb_replicate_opts *o, struct vb_replicate_result *r)
{
  struct sync x = { .o = o, .r = r,
                    .own = { .ssh = { .to = -1, .from = -1 } } };
  double t0 = vb_mono ();
  int ret;

  memset (r, 0, sizeof *r);
  x.l = o->link ? o->link : &x.own;
  ret = steps (&x);
  /* Whichever layer noticed the signal first, the user hears one thing. */
  if (ret < 0 && o->cancel && __atomic_load_n (o->cancel, __ATOMIC_RELAXED))
    vb_set_error_code (VB_ERR_CANCELLED, 0, "interrupted by a signal: the "
                       "standby keeps its last completed point");
  cleanup (&x, ret < 0);
  vb_phase ("cleaned-up");
  r->point = x.point;
  r->parent = x.parent;
  r->bytes = x.bytes;
  r->ndisks = x.ndisks;
  r->seconds = vb_mono () - t0;
  r->lag = x.t_job > 0 ? vb_mono () - x.t_job : 0;
  return ret;
}

struct vb_replica_link *
vb_replica_link_new (void)
{
  struct vb_replica_link *l = calloc (1, sizeof *l);

  if (!l) {
    vb_set_error ("out of memory");
    return NULL;
  }
  l->ssh.to = l->ssh.from = -1;
  return l;
}

/* Closing ssh's pipes ends the idle receiver at once. */
void
vb_replica_link_free (struct vb_replica_link *l)
{
  if (!l)
    return;
  close_link (l);
  free (l);
}

void
vb_replicate_result_free (struct vb_replicate_result *r)
{
  free (r->point);
  free (r->parent);
  memset (r, 0, sizeof *r);
}
