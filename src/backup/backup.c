/* SPDX-License-Identifier: GPL-3.0-or-later */
/* One backup run: checks, checkpoint plan, job, parallel disk copies, and
 * a cleanup that always runs. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libxml/uri.h>

#include "backup/run.h"
#include "common/cleanup.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/text.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "target/target.h"
#include "nbd/nbd.h"
#include "nbd/qemu_nbd.h"
#include "remote/remote.h"
#include "virt/virt.h"

/* Note a file this run stored, so a failed run can take it back: a data
 * file outside the chain must not be mistaken for a backup. */
static int
remember (struct run *x, const char *name)
{
  char **w;
  int r = 0;

  pthread_mutex_lock (&x->mu);
  w = realloc (x->written, (x->nwritten + 1) * sizeof *w);
  if (w)
    x->written = w;
  if (!w || !(w[x->nwritten] = strdup (name))) {
    vb_set_error ("out of memory");
    r = -1;
  }
  else
    x->nwritten++;
  pthread_mutex_unlock (&x->mu);
  return r;
}

static int
put_side (struct run *x, const char *name, const char *data)
{
  if (vb_target_put (x->t, name, data, strlen (data)) < 0)
    return -1;
  return remember (x, name);
}

/* vmconfig.<ident>.xml and <disk>.<ident>.qcow.json, as the peer keeps. */
static int
save_side_files (struct run *x)
{
  CLEANUP_FREE char *vmconfig = vb_bset_vmconfig_name (x->plan.ident);

  if (!vmconfig || put_side (x, vmconfig, x->d->xml) < 0)
    return -1;
  for (size_t i = 0; i < x->nsel; i++) {
    struct vb_disk *disk = x->sel[i].disk;
    CLEANUP_IMAGE_INFO struct vb_image_info *info = NULL;
    CLEANUP_FREE char *name = NULL;
    /* Also of a raw disk: its image info is the record of its size. */
    if (!disk->path)
      continue;
    info = STEAL (x->sel[i].info);
    if (!info && !(info = vb_host_img_info (x->remote, disk->path))) {
      vb_warn ("disk %s: no image info saved: %s", disk->target,
               vb_get_error ());
      continue;
    }
    if (!(name = vb_bset_qcow_json_name (disk->target, x->plan.ident)) ||
        put_side (x, name, info->json) < 0)
      return -1;
  }
  return 0;
}

/* "nbd://ADDR:PORT", or "nbds://...?tls-certificates=DIR" with --tls
 * (nbd/nbd.h), for NBD_IP: an IPv6 address goes in brackets. */
static char *
tcp_address (struct run *x, int port)
{
  const char *ip = x->o.nbd_ip;
  bool v6 = strchr (ip, ':') != NULL;
  CLEANUP_FREE char *q = NULL;

  if (x->o.tls) {
    xmlChar *e = xmlURIEscapeStr (BAD_CAST (x->o.tls_dir ? x->o.tls_dir
                                            : "/etc/pki/qemu"), BAD_CAST "/");
    q = e ? vb_xasprintf ("?tls-certificates=%s", (char *) e) : NULL;
    xmlFree (e);
    if (!q)
      return NULL;
  }
  return vb_xasprintf ("%s://%s%s%s:%d%s", x->o.tls ? "nbds" : "nbd",
                       v6 ? "[" : "", ip, v6 ? "]" : "", port, q ? q : "");
}

/* Shut-off remote domain: a qemu-nbd on its host per disk, on TCP. */
static int
start_remote_servers (struct run *x)
{
  for (size_t i = 0; i < x->nsel; i++) {
    struct sel *sl = &x->sel[i];
    struct vb_rnbd_opts ro = {
      .image = sl->disk->path, .format = sl->disk->format,
      .export = sl->disk->target, .readonly = true, .cancel = x->o.cancel,
      .bitmap = sl->raw ? NULL : x->plan.parent, .addr = x->o.nbd_ip,
      .port_lo = x->o.nbd_port_lo, .port_hi = x->o.nbd_port_hi,
      .tls_dir = x->o.tls ? "/etc/pki/qemu" : NULL,
    };
    if (vb_rnbd_start (x->remote, &sl->rserver, &ro) < 0 ||
        !(sl->socket = tcp_address (x, sl->rserver.port)))
      return -1;
    vb_debug ("disk %s: served by qemu-nbd on %s port %d", sl->disk->target,
              x->remote->host, sl->rserver.port);
  }
  return 0;
}

/* Shut-off domain: make the checkpoint ourselves, then serve each image
 * read-only with qemu-nbd, exposing the parent checkpoint's bitmap. */
static int
start_offline (struct run *x, const char *const *names)
{
  if (x->plan.checkpoint && !x->o.print_only) {
    if (vb_offline_checkpoint_create (x->d, x->plan.checkpoint,
                                      x->plan.parent, names) < 0)
      return -1;
    x->checkpoint_made = true;
  }
  if (x->remote)
    return start_remote_servers (x);
  for (size_t i = 0; i < x->nsel; i++) {
    struct sel *sl = &x->sel[i];
    char sock[4096];
    snprintf (sock, sizeof sock, "%s/%s.sock", x->rundir, sl->disk->target);
    struct vb_qemu_nbd_opts qo = {
      .image = sl->disk->path, .format = sl->disk->format, .sock = sock,
      .export = sl->disk->target, .readonly = true, .cancel = x->o.cancel,
      .bitmap = sl->raw ? NULL : x->plan.parent,
    };
    if (vb_qemu_nbd_start (&sl->server, &qo) < 0 ||
        !(sl->socket = strdup (sock)))
      return -1;
  }
  return 0;
}

/* Targets of the selected disks; with RAW, only the raw ones (they carry
 * no bitmap), else only the others when BITMAP_ONLY. */
static const char **
disk_names (struct run *x, bool raw_only, bool bitmap_only)
{
  const char **v = calloc (x->nsel + 1, sizeof *v);
  size_t n = 0;

  if (!v) {
    vb_set_error ("out of memory");
    return NULL;
  }
  for (size_t i = 0; i < x->nsel; i++)
    if ((!raw_only || x->sel[i].raw) && (!bitmap_only || !x->sel[i].raw))
      v[n++] = x->sel[i].disk->target;
  return v;
}

static void
freeze (struct run *x)
{
  if (x->o.no_freeze)
    return;
  if (vb_fsfreeze (x->d) < 0)
    vb_warn ("guest agent did not freeze the filesystems (%s): the backup "
             "is crash-consistent", vb_get_error ());
  else
    x->frozen = true;
}

/* Begin the job; on TCP at the first port of the range QEMU can bind. */
static int
begin (struct run *x, struct vb_backup_spec *spec)
{
  int r = -1;

  if (!x->o.nbd_ip)
    return vb_backup_begin (x->d, spec);
  spec->tcp_addr = x->o.nbd_ip;
  spec->tls = x->o.tls;
  for (int p = x->o.nbd_port_lo; p <= x->o.nbd_port_hi; p++) {
    spec->tcp_port = p;
    if ((r = vb_backup_begin (x->d, spec)) == 0)
      break;
    if (!vb_backup_port_busy ())
      return -1;
    vb_debug ("port %d is taken on %s", p, x->o.nbd_ip);
  }
  if (r < 0) {
    vb_prefix_error ("every port of %d-%d is taken on %s: give another "
                     "--nbd-port", x->o.nbd_port_lo, x->o.nbd_port_hi,
                     x->o.nbd_ip);
    return -1;
  }
  vb_debug ("the job serves on %s port %d", x->o.nbd_ip, spec->tcp_port);
  if ((x->nbd_addr = tcp_address (x, spec->tcp_port)))
    return 0;
  vb_backup_end (x->d);
  vb_set_error ("out of memory");
  return -1;
}

/* Freeze, begin the pull-mode job, thaw right away: the job's point in time
 * is its start. */
static int
start_job (struct run *x)
{
  CLEANUP_FREE const char **names = disk_names (x, false, false);
  CLEANUP_FREE const char **raws = disk_names (x, true, false);
  CLEANUP_FREE const char **bms = disk_names (x, false, true);
  struct vb_backup_spec spec = {
    .socket_path = x->socket, .scratch_dir = x->rundir,
    .incremental = x->plan.parent,
    .new_checkpoint = x->o.print_only ? NULL : x->plan.checkpoint,
    .disks = names, .nobitmap_disks = raws,
  };
  bool fresh;
  int r;

  if (!names || !raws || !bms)
    return -1;
  if (x->offline)
    return start_offline (x, bms);
  /* A checkpoint that was there before is not ours to remove. */
  fresh = spec.new_checkpoint &&
          !vb_checkpoint_exists (x->d, spec.new_checkpoint);
  freeze (x);
  vb_debug ("starting the backup job");
  r = begin (x, &spec);
  if (r < 0 && vb_get_error_code () == VB_ERR_BITMAP) {
    /* libvirt validates the bitmaps at job start: lost in an unclean QEMU
     * exit, removed by hand, or never written. */
    struct vb_error e;
    vb_error_save (&e);
    vb_set_error_code (e.code, 0, "%s: the chain cannot continue: run a "
                       "full backup (-l full) into a new directory", e.msg);
  }
  if (r == 0) {
    vb_debug ("backup job started");
    x->job = true;
  }
  /* libvirt makes the checkpoint with the job; should a failed start keep
   * it, the cleanup takes it back. */
  x->checkpoint_made = fresh &&
    (r == 0 || vb_checkpoint_exists (x->d, spec.new_checkpoint));
  if (x->frozen && vb_fsthaw (x->d) >= 0)
    x->frozen = false;
  return r;
}

static void
fill_spec (struct run *x, size_t i, struct vb_disk_spec *s, char *file,
           size_t filecap, char *ctx, size_t ctxcap)
{
  struct vb_disk *disk = x->sel[i].disk;
  bool raw = x->sel[i].raw;
  enum vb_level lvl = raw ? VB_LEVEL_COPY : x->plan.level;
  CLEANUP_FREE char *fname = vb_bset_data_name (disk->target, lvl,
                                               x->plan.ident);

  memset (s, 0, sizeof *s);
  snprintf (file, filecap, "%s", fname ? fname : "");
  s->socket = x->offline ? x->sel[i].socket
              : x->nbd_addr ? x->nbd_addr : x->socket;
  s->disk = disk->target;
  s->format = disk->format;
  s->file = file;
  if (x->plan.parent && !raw) {
    /* libvirt names the job's bitmap export after the disk; our qemu-nbd
     * exports the checkpoint's own bitmap. */
    if (x->offline)
      snprintf (ctx, ctxcap, "qemu:dirty-bitmap:%s", x->plan.parent);
    else
      snprintf (ctx, ctxcap, "qemu:dirty-bitmap:backup-%s", disk->target);
    s->dirty_ctx = ctx;
  }
  s->raw_output = raw || x->o.raw_output;
  s->compress = x->o.compress && !s->raw_output;
  s->level = x->o.compress_level;
  s->zstd = x->o.zstd;
  s->peer_compatible = x->o.peer_compatible;
  s->workers = sysconf (_SC_NPROCESSORS_ONLN) > 0 ?
    (unsigned) sysconf (_SC_NPROCESSORS_ONLN) : 1;
  s->req_size = x->o.req_size;
  s->inflight = x->o.inflight;
  s->conns = x->o.conns;
  s->cancel = &x->stop;
  s->meta = (struct vb_meta) {
    .disk_name = disk->target, .disk_format = disk->format,
    .checkpoint_name = x->plan.meta_checkpoint,
    .parent_checkpoint = x->plan.parent ? x->plan.parent : "",
    .compressed = s->compress, .compression_level = s->level,
    .compression_method = s->zstd ? "zstd" : "lz4",
    .incremental = x->plan.parent != NULL,
    .stream_version = VB_STREAM_VERSION,
  };
}

static int
one_disk (struct run *x, size_t i)
{
  struct vb_disk_spec s;
  char file[4096], ctx[512];
  struct vb_disk_result *r = &x->r->disks[i];
  CLEANUP_FREE char *date = vb_meta_now ();
  int ret;

  fill_spec (x, i, &s, file, sizeof file, ctx, sizeof ctx);
  s.meta.date = date;
  if (x->o.print_only)
    return vb_estimate_disk (&s, r);
  r->file = strdup (file);
  vb_info ("disk %s: saving to %s", s.disk, file);
  ret = vb_backup_disk (x->t, &s, r);
  if (ret == 0) {
    CLEANUP_FREE char *sum = vb_bset_chksum_name (file);
    if (!sum || remember (x, file) < 0 || remember (x, sum) < 0)
      return -1;
  }
  if (ret == 0)
    vb_info ("disk %s: %" PRIu64 " bytes of data in %" PRIu64 " extents, "
             "%.2f s", s.disk, r->done, r->data_extents, r->seconds);
  return ret;
}

static void *
worker (void *arg)
{
  struct run *x = arg;

  pthread_mutex_lock (&x->mu);
  while (x->next < x->nsel && !x->stop) {
    size_t i = x->next++;
    pthread_mutex_unlock (&x->mu);
    int r = one_disk (x, i);
    pthread_mutex_lock (&x->mu);
    if (r < 0 && !x->failed) {
      vb_error_save (&x->first_error);
      x->failed = true;
      __atomic_store_n (&x->stop, 1, __ATOMIC_RELAXED);   /* read by copy threads */
    }
  }
  x->running--;
  pthread_cond_signal (&x->cv);
  pthread_mutex_unlock (&x->mu);
  return NULL;
}

static bool
lost_link (int e)
{
  return e == ETIMEDOUT || e == ECONNRESET || e == EPIPE || e == ENOTCONN ||
         e == EHOSTUNREACH || e == ENETUNREACH || e == ECONNABORTED;
}

/* A read error is often the domain going away under us: say so. */
static void
explain_stopped (struct run *x)
{
  struct vb_error e;
  struct timespec ts = { 0, 100000000 };

  vb_error_save (&e);
  /* The NBD connection drops a moment before libvirt sees QEMU gone;
   * only a failed read points that way. */
  for (int i = 0; i < 30 && !x->offline && e.code == VB_ERR_NBD_READ; i++) {
    if (vb_domain_refresh (x->d) < 0 || !x->d->running)
      break;
    nanosleep (&ts, NULL);
  }
  if (x->offline || x->d->running) {
    vb_error_restore (&e);
    if (x->remote && (lost_link (e.errnum) || !vb_domain_reachable (x->d) ||
                      vb_domain_refresh (x->d) < 0))
      vb_set_error_code (e.code, e.errnum, "host %s did not answer: %s: "
                         "once it is reachable, run the backup again (with "
                         "-k if its job still runs)", x->remote->host, e.msg);
    else if (x->remote && e.code != VB_ERR_CANCELLED)
      vb_set_error_code (e.code, e.errnum, "host %s: %s", x->remote->host,
                         e.msg);
    return;
  }
  vb_set_error ("domain '%s' stopped during the backup (%s): start it and "
                "run the backup again", x->d->name, e.msg);
}

/* Run the disks on a pool of threads while this thread ticks progress and
 * forwards cancellation. */
static int
run_disks (struct run *x)
{
  size_t nw = x->o.workers ? x->o.workers : x->nsel;
  pthread_t th[64];
  size_t started = 0;

  if (nw > x->nsel)
    nw = x->nsel;
  if (nw > 64)
    nw = 64;
  pthread_mutex_lock (&x->mu);
  for (; started < nw; started++) {
    if (pthread_create (&th[started], NULL, worker, x) != 0)
      break;
    x->running++;
  }
  while (x->running > 0) {
    struct timespec ts;
    vb_cond_deadline (&ts, 500);
    pthread_cond_timedwait (&x->cv, &x->mu, &ts);
    if (x->o.cancel && __atomic_load_n (x->o.cancel, __ATOMIC_RELAXED) &&
        !x->stop) {
      __atomic_store_n (&x->stop, 1, __ATOMIC_RELAXED);
      if (!x->failed) {
        vb_set_error_code (VB_ERR_CANCELLED, 0, "interrupted by a signal");
        vb_error_save (&x->first_error);
        x->failed = true;
      }
    }
    pthread_mutex_unlock (&x->mu);
    if (x->o.tick)
      x->o.tick (x->o.op, x->r);
    pthread_mutex_lock (&x->mu);
  }
  pthread_mutex_unlock (&x->mu);
  for (size_t i = 0; i < started; i++)
    pthread_join (th[i], NULL);
  if (started == 0) {
    vb_set_error ("cannot start worker threads");
    return -1;
  }
  if (x->failed) {
    vb_error_restore (&x->first_error);
    explain_stopped (x);
    return -1;
  }
  return 0;
}

/* Where a job's socket is, or for a job on TCP where it would be: beside
 * the scratch images. */
static char *
job_socket (const char *jx)
{
  CLEANUP_FREE char *sock = vb_xml_string
    (jx, "string(/domainbackup/server/@socket)");
  CLEANUP_FREE char *scratch = NULL;
  char *slash;

  if (sock && *sock)
    return STEAL (sock);
  scratch = vb_xml_string (jx, "string(/domainbackup/disks/disk"
                           "[@backup='yes'][1]/scratch/@file)");
  if (!scratch || !(slash = strrchr (scratch, '/')))
    return NULL;
  *slash = '\0';
  return vb_xasprintf ("%s/nbd.sock", scratch);
}

/* The marks of a job a virtback run started: its NBD socket is nbd.sock
 * in a private directory virtback.XXXXXX, every scratch image lies beside
 * it as scratch-<disk>.qcow2, and an incremental starts from a checkpoint
 * of our prefix.  Whoever else runs a backup job keeps it. */
static bool
job_is_ours (const char *jx, const char *prefix)
{
  CLEANUP_FREE char *sock = job_socket (jx);
  CLEANUP_FREE char *inc = vb_xml_string
    (jx, "string(/domainbackup/incremental)");
  CLEANUP_FREE char *foreign = NULL, *xp = NULL;
  const char *slash = sock ? strrchr (sock, '/') : NULL;
  size_t dlen = slash ? (size_t) (slash - sock) : 0;
  size_t pl = strlen (prefix);

  if (!slash || strcmp (slash, "/nbd.sock") || dlen < 16 ||
      strncmp (slash - 16, "/virtback.", 10) || strchr (sock, '\''))
    return false;
  if (inc && *inc && (strncmp (inc, prefix, pl) || inc[pl] != '.'))
    return false;
  if (asprintf (&xp, "count(/domainbackup/disks/disk[@backup='yes' and "
                "not(starts-with(scratch/@file, '%.*s/scratch-'))])",
                (int) dlen, sock) < 0)
    return false;
  foreign = vb_xml_string (jx, xp);
  return foreign && !strcmp (foreign, "0");
}

/* libvirt may not describe a job right after its client was killed
 * ("backup job data missing"): ask for a few seconds. */
static char *
stale_job_xml (struct run *x)
{
  struct timespec ts = { 0, 500000000 };
  char *jx;

  for (int i = 0; !(jx = vb_backup_job_xml (x->d)) && i < 10; i++)
    nanosleep (&ts, NULL);
  return jx;
}

/* -k: end the job a killed run of ours left, and its private directory;
 * any other backup job only with --force. */
static int
end_stale_job (struct run *x)
{
  CLEANUP_FREE char *jx = stale_job_xml (x);
  CLEANUP_FREE char *sock = jx ? job_socket (jx) : NULL;
  struct timespec ts = { 0, 500000000 };

  if (!x->o.force && (!jx || !job_is_ours (jx, x->o.prefix))) {
    if (!jx)
      vb_prefix_error ("cannot tell whose backup job runs on domain '%s': "
                       "retry -k in a moment, or end it with -k --force",
                       x->d->name);
    else
      vb_set_error ("the backup job on domain '%s' (NBD socket %s) was not "
                    "started by virtback: it is left running; if it is "
                    "stale, end it with -k --force", x->d->name,
                    sock && *sock ? sock : "none");
    return -1;
  }
  vb_info ("ending the stale job on domain '%s' (-k%s)", x->d->name,
           x->o.force ? " --force" : "");
  for (int i = 0; ; i++) {
    if (vb_backup_end (x->d) == 0)
      break;
    if (i == 10) {
      vb_prefix_error ("cannot end the stale job: retry with -k in a moment");
      return -1;
    }
    nanosleep (&ts, NULL);
  }
  vb_run_remove_stale_dir (x->remote, sock);
  return 0;
}

static int
check_domain (struct run *x)
{
  int active;

  if (!x->d->running) {
    x->offline = true;
    vb_info ("domain '%s' is shut off: its images are read through "
             "qemu-nbd", x->d->name);
    return 0;
  }
  if ((active = vb_job_active (x->d)) < 0) {
    /* Right after a backup was killed libvirt may not say what the job
     * is ("backup job data missing"); -k retries until it settles. */
    if (!x->o.kill_stale) {
      vb_prefix_error ("a job on domain '%s' is in an unclear state: if a "
                       "backup was killed, end it with -k", x->d->name);
      return -1;
    }
    active = 1;
  }
  if (active && !x->o.kill_stale) {
    vb_set_error ("a job is already running on domain '%s': if it is a "
                  "stale backup, end it with -k", x->d->name);
    return -1;
  }
  if (active)
    return end_stale_job (x);
  return 0;
}

static int
init_results (struct run *x)
{
  struct vb_backup_result *r = x->r;

  r->level = x->plan.level;
  r->checkpoint = x->plan.checkpoint ? strdup (x->plan.checkpoint) : NULL;
  r->parent = x->plan.parent ? strdup (x->plan.parent) : NULL;
  r->disks = calloc (x->nsel, sizeof *r->disks);
  if (!r->disks) {
    vb_set_error ("out of memory");
    return -1;
  }
  r->ndisks = x->nsel;
  for (size_t i = 0; i < x->nsel; i++)
    r->disks[i].disk = strdup (x->sel[i].disk->target);
  return 0;
}

/* -l auto and a chain that cannot go on (a lost bitmap, a checkpoint gone
 * for good or replaced by another backup's, a disk that is not in it, a
 * file of it missing or damaged): keep the old chain, complete, in
 * DIR/chain.<epoch>, and start a new one with a full. */
static int
new_chain (struct run *x)
{
  CLEANUP_FREE char *why = strdup (vb_get_error ());
  CLEANUP_FREE char *sub = NULL, *path = NULL;
  CLEANUP_STRV char **names = NULL;
  struct vb_backup_opts full = x->o;

  if (!(sub = vb_xasprintf ("chain.%lld", (long long) time (NULL))) ||
      !(path = vb_path_join (x->o.outdir, sub)) ||
      vb_target_mkdir (x->t, sub) < 0 || !(names = vb_target_list (x->t, NULL)))
    return -1;
  for (char **e = names; *e; e++) {
    CLEANUP_FREE char *to = NULL;
    if (!strncmp (*e, "chain.", 6))
      continue;
    if (!(to = vb_xasprintf ("%s/%s", sub, *e)) ||
        vb_target_rename (x->t, *e, to) < 0) {
      vb_prefix_error ("move %s into %s", *e, path);
      return -1;
    }
  }
  vb_info ("the chain in %s cannot go on (%s): -l auto starts a new chain "
           "with a full backup; the old chain is kept in %s", x->o.outdir,
           why ? why : "", path);
  vb_plan_free (&x->plan);
  full.level = VB_LEVEL_FULL;
  return vb_plan_make (x->d, &full, x->t, x->ct, &x->plan);
}

/* The backup directory (or the zip on stdout) and the checkpoint
 * directory, each opened once for the run.  Nothing is created yet: a
 * directory that does not exist reads as empty until the first write. */
static int
open_targets (struct run *x)
{
  x->t = x->to_stdout ? vb_target_zip_open (STDOUT_FILENO, x->o.policy)
                      : vb_target_dir_open (x->o.outdir, x->o.policy);
  if (!x->t)
    return -1;
  /* -o - without -C: the XML goes into the zip (cpt_in_target). */
  if (x->to_stdout && x->cpt_in_target)
    return 0;
  x->ct = vb_target_dir_open (x->o.cptdir, x->o.policy);
  return x->ct ? 0 : -1;
}

/* A remote domain's disks come over TCP: say where, and whether the
 * data goes in the clear. */
static int
check_remote (struct run *x)
{
  if (!(x->remote = x->d->remote))
    return 0;
  if (!x->o.nbd_ip) {
    vb_set_error ("domain '%s' is on host %s: its disks are read over NBD "
                  "on TCP: give --nbd-ip, the address there on which QEMU "
                  "is to listen", x->d->name, x->remote->host);
    return -1;
  }
  if (!x->o.tls && !x->o.print_only)
    vb_warn ("the disk data of domain '%s' crosses the network from %s "
             "unencrypted: use --tls to encrypt it", x->d->name,
             x->o.nbd_ip);
  return 0;
}

static int
prepare (struct run *x)
{
  /* A running remote domain's job needs a directory there: its session
   * starts while libvirt connects. */
  if (!(x->d = vb_domain_new (x->o.uri, x->o.domain)) ||
      vb_run_start_rundir (x) < 0 ||
      vb_domain_connect (x->d, x->o.uri, x->o.include_raw) < 0 ||
      check_remote (x) < 0 || vb_run_group_rundir (x) < 0)
    return -1;
  if (open_targets (x) < 0 ||
      !(x->lock = vb_target_lock (x->t, x->d->uuid, x->d->name)))
    return -1;
  if (check_domain (x) < 0 ||
      vb_plan_make (x->d, &x->o, x->t, x->ct, &x->plan) < 0)
    return -1;
  if (x->o.level == VB_LEVEL_AUTO && x->plan.level == VB_LEVEL_INC &&
      !x->o.print_only && vb_run_chain_usable (x) == 0 && new_chain (x) < 0)
    return -1;
  if (vb_run_select_disks (x) < 0 || init_results (x) < 0)
    return -1;
  /* -l auto judged the chain above, and started anew where it could not
   * go on. */
  if (x->o.level != VB_LEVEL_AUTO && vb_run_check_chain (x) < 0)
    return -1;
  if (x->o.print_only)
    return 0;
  if (x->to_stdout) {
    for (size_t i = 0; i < x->nsel; i++)
      if (x->sel[i].raw) {     /* a raw image is written out of order */
        vb_set_error ("disk %s is in raw format: -o - cannot hold its "
                      "image; back it up into a directory, or leave it out "
                      "with -x %s", x->sel[i].disk->target,
                      x->sel[i].disk->target);
        return -1;
      }
    x->o.workers = 1;          /* a zip holds one open file at a time */
    return 0;
  }
  if (vb_target_mkdir (x->t, NULL) < 0 ||
      (x->ct && vb_target_mkdir (x->ct, NULL) < 0))
    return -1;
  if (vb_bset_remove_partials (x->t) > 0)
    vb_info ("removed unfinished files of an earlier run from %s",
             x->o.outdir);
  return 0;
}

static void
stop_servers (struct run *x)
{
  for (size_t i = 0; i < x->nsel; i++) {
    vb_qemu_nbd_stop (&x->sel[i].server);
    vb_rnbd_stop (&x->sel[i].rserver);
    free (x->sel[i].socket);
    x->sel[i].socket = NULL;
  }
}

static int
run_steps (struct run *x)
{
  if (prepare (x) < 0)
    return -1;
  if (!x->o.print_only && x->o.started &&
      x->o.started (x->o.op, x->t, x->plan.level) < 0)
    return -1;
  vb_info ("%s backup of domain '%s'%s%s%s%s", vb_level_name (x->plan.level),
           x->d->name, x->plan.parent ? " since " : "",
           x->plan.parent ? x->plan.parent : "",
           x->plan.checkpoint ? ", checkpoint " : "",
           x->plan.checkpoint ? x->plan.checkpoint : "");
  if (!x->o.print_only && vb_plan_apply (x->d, &x->plan) < 0)
    return -1;
  if (vb_run_check_chain_disks (x) < 0)
    return -1;
  if (!x->remote)
    vb_run_reap_stale (x->o.scratchdir ? x->o.scratchdir : "/var/tmp");
  /* A shut-off remote domain has no job, hence no scratch images there. */
  if (!(x->remote && x->offline) && vb_run_make_rundir (x) < 0)
    return -1;
  /* The job first: a remote host's image facts are still on their way
   * (facts.c), and the side files wait for them. */
  if (start_job (x) < 0) {
    struct vb_error e;
    vb_error_save (&e);
    if (vb_run_facts_wait (x) == 0)
      vb_error_restore (&e);
    return -1;
  }
  if (vb_run_facts_wait (x) < 0 ||
      (!x->o.print_only && save_side_files (x) < 0))
    return -1;
  vb_debug ("side files saved");
  if (run_disks (x) < 0)
    return -1;
  if (x->job) {
    if (vb_backup_end (x->d) < 0)
      return -1;           /* the cleanup tries again */
    x->job = false;
    vb_debug ("backup job ended");
  }
  stop_servers (x);
  if (x->o.print_only)
    return 0;
  if (vb_plan_commit (x->d, &x->o, &x->plan, x->t, x->cpt_in_target) < 0)
    return -1;
  return vb_target_finish (x->t);
}

/* The host stopped answering: what is left there is said once, and left
 * to the next run (-k ends the job and removes the directory; the plan
 * drops a checkpoint whose backup did not complete). */
static void
out_of_reach (struct run *x)
{
  vb_warn ("host %s is out of reach: %s%s%s%s%s stay there until the next "
           "run with -k", x->remote->host,
           x->job ? "the backup job" : "nothing of this run",
           x->checkpoint_made ? ", checkpoint " : "",
           x->checkpoint_made ? x->plan.checkpoint : "",
           x->rundir ? ", directory " : "", x->rundir ? x->rundir : "");
  x->frozen = x->job = x->checkpoint_made = false;
  free (x->rundir);
  x->rundir = NULL;
  /* Its session removes the directory itself once no keepalive comes. */
  if (x->rdir.pid > 0)
    kill (x->rdir.pid, SIGTERM);
}

/* Runs whatever happened: the job ends, the checkpoint of a failed run is
 * dropped, side files of a failed run go, the private directory goes. */
static void
cleanup (struct run *x, bool failed)
{
  struct vb_error err;

  vb_error_save (&err);
  if (failed && x->remote && x->d && !vb_domain_reachable (x->d))
    out_of_reach (x);
  if (x->frozen)
    vb_fsthaw (x->d);
  if (x->job && vb_backup_end (x->d) < 0)
    vb_warn ("could not end the backup job: %s", vb_get_error ());
  stop_servers (x);
  if (failed && x->checkpoint_made &&
      vb_plan_delete_checkpoint (x->d, x->plan.checkpoint) < 0)
    vb_warn ("could not remove checkpoint %s of the failed backup: %s",
             x->plan.checkpoint, vb_get_error ());
  for (size_t i = 0; i < x->nwritten; i++) {
    if (failed && !x->to_stdout && vb_target_remove (x->t, x->written[i]) < 0)
      vb_warn ("%s", vb_get_error ());
    free (x->written[i]);
  }
  free (x->written);
  vb_run_remove_rundir (x);
  vb_target_unlock (x->lock);
  vb_target_close (x->t);
  vb_target_close (x->ct);
  vb_plan_free (&x->plan);
  vb_run_facts_join (x);
  vb_domain_close (x->d);
  for (size_t i = 0; x->sel && i < x->nsel; i++)
    vb_image_info_free (x->sel[i].info);
  free (x->sel);
  free (x->nbd_addr);
  free (x->cptdir_alloc);
  vb_error_restore (&err);
}

int
vb_backup_run (const struct vb_backup_opts *o, struct vb_backup_result *r)
{
  struct run x = { .o = *o, .r = r,
                   .mu = PTHREAD_MUTEX_INITIALIZER,
                   .cv = PTHREAD_COND_INITIALIZER };
  int ret;


  memset (r, 0, sizeof *r);
  r->start = vb_mono ();
  x.to_stdout = !strcmp (o->outdir, "-");
  x.cpt_in_target = !o->cptdir;
  if (x.to_stdout && (o->level != VB_LEVEL_COPY && o->level != VB_LEVEL_FULL)) {
    vb_set_error ("-o - streams copy and full backups only: an incremental "
                  "needs the chain in a backup directory");
    return -1;
  }
  if (!x.o.cptdir) {
    x.cptdir_alloc = vb_path_join (x.to_stdout ? "." : o->outdir,
                                   "checkpoints");
    x.o.cptdir = x.cptdir_alloc;
  }
  if (!x.o.prefix)
    x.o.prefix = "virtback";
  if (!x.o.nbd_port_lo)
    x.o.nbd_port_lo = 10809, x.o.nbd_port_hi = 10908;
  if (x.o.nbd_port_hi < x.o.nbd_port_lo)
    x.o.nbd_port_hi = x.o.nbd_port_lo;
  vb_virt_set_timeout (x.o.timeout);
  vb_virt_set_cancel (x.o.cancel);
  vb_nbd_set_io_timeout (x.o.timeout);
  vb_nbd_set_connect_timeout ((x.o.timeout > 0 ? x.o.timeout : 60) * 1000);
  /* Sharing a chain with the peer means the peer must restore it. */
  if (!strcmp (x.o.prefix, "virtnbdbackup"))
    x.o.peer_compatible = true;
  if (x.o.peer_compatible && x.o.zstd) {
    vb_set_error ("virtnbdrestore cannot read zstd: --peer-compatible (also "
                  "implied by --checkpoint-prefix virtnbdbackup) takes lz4 "
                  "(-z) or no compression");
    return -1;
  }
  ret = run_steps (&x);
  cleanup (&x, ret < 0);
  return ret;
}

void
vb_backup_result_free (struct vb_backup_result *r)
{
  for (size_t i = 0; i < r->ndisks; i++) {
    free (r->disks[i].disk);
    free (r->disks[i].file);
  }
  free (r->disks);
  free (r->checkpoint);
  free (r->parent);
  memset (r, 0, sizeof *r);
}
