/* SPDX-License-Identifier: GPL-3.0-or-later */
/* restore.c: one restore run, from backup directory to images.  See
 * restore.h.  Plan everything first (chain, restore point, targets), so
 * that a bad backup or an existing image fails before anything is
 * written; then write each disk through its own qemu-nbd; rename the
 * images into place only when every disk is complete. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backupset/chain.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "target/target.h"
#include "common/fsutil.h"
#include "nbd/nbd.h"
#include "restore/internal.h"
#include "remote/remote.h"
#include "view/view.h"
#include "restore/restore.h"
#include "virt/virt.h"

struct job {
  const struct vb_chain_disk *d;
  struct vb_chain_file **files;  /* NULL-terminated, chain order */
  size_t nfiles;
  char *final;                   /* image path, or the --to target */
  char *partial;                 /* NULL with --to */
  bool created, block;
  const char *fmt;               /* written as: "qcow2" or "raw" (static) */
  struct vb_apply_stats st;
};

struct run {
  const struct vb_restore_opts *o;
  const char *fmt;
  struct vb_target *t;         /* the backup directory, read once */
  struct vb_chain *c;
  struct job *jobs;
  size_t njobs;
  char *outdir;                  /* absolute */
  char *xml, *xml_name;          /* VM definition to write, and its name */
  char **notes;
  size_t nnotes;
  struct vb_remote host;         /* the URI's host */
  const struct vb_remote *rem;   /* &host for a remote restore, else NULL */
};

/* Does PATH exist, on the host that gets the images? */
static int
path_exists (const struct run *rn, const char *path)
{
  struct stat st;

  if (rn->rem)
    return vb_remote_exists (rn->rem, path);
  return lstat (path, &st) == 0;
}

static void
remove_path (const struct run *rn, const char *path)
{
  if (rn->rem)
    vb_remote_unlink (rn->rem, path);
  else
    unlink (path);
}

/* Problems of D that FILES do not need: the restore goes on, and they
 * become notes of the result. */
static void
note_later (struct run *rn, const struct vb_chain_disk *d,
            struct vb_chain_file *const *files)
{
  char *later = vb_chain_later_problems (rn->c, d, files), *text, **nv;

  if (!later)
    return;
  if (asprintf (&text, "disk %s: damage after the restore point, which it "
                "does not need (verify -i %s lists it): %s", d->disk,
                rn->o->input, later) < 0)
    text = NULL;
  free (later);
  nv = text ? realloc (rn->notes, (rn->nnotes + 2) * sizeof *nv) : NULL;
  if (!nv) {
    free (text);
    return;
  }
  nv[rn->nnotes++] = text;
  nv[rn->nnotes] = NULL;
  rn->notes = nv;
}

static struct job *
add_job (struct run *rn, const struct vb_chain_disk *d,
         struct vb_chain_file **files)
{
  struct job *nj = realloc (rn->jobs, (rn->njobs + 1) * sizeof *nj);

  if (!nj) {
    free (files);
    vb_set_error_errno (ENOMEM, "restore");
    return NULL;
  }
  rn->jobs = nj;
  memset (&nj[rn->njobs], 0, sizeof nj[0]);
  note_later (rn, d, files);
  nj[rn->njobs].d = d;
  nj[rn->njobs].files = files;
  while (files[nj[rn->njobs].nfiles])
    nj[rn->njobs].nfiles++;
  return &nj[rn->njobs++];
}

static bool
wanted (const struct vb_restore_opts *o, const char *disk)
{
  if (!o->disks)
    return true;
  for (size_t i = 0; o->disks[i]; i++)
    if (strcmp (o->disks[i], disk) == 0)
      return true;
  return false;
}

static int
plan_sequence (struct run *rn)
{
  struct vb_chain_file **files = vb_chain_sequence (rn->c, rn->o->sequence);

  if (!files)
    return -1;
  if (!wanted (rn->o, files[0]->disk)) {
    vb_set_error ("the --sequence files are of disk %s, not of the disk "
                  "given with -d", files[0]->disk);
    free (files);
    return -1;
  }
  return add_job (rn, vb_chain_find_disk (rn->c, files[0]->disk), files)
    ? 0 : -1;
}

static int
plan_disks (struct run *rn)
{
  const struct vb_restore_opts *o = rn->o;

  for (size_t i = 0; o->disks && o->disks[i]; i++)
    if (!vb_chain_find_disk (rn->c, o->disks[i])) {
      vb_set_error ("%s holds no backup of disk %s: run 'virtback dump -i "
                    "%s' to see its disks", o->input, o->disks[i], o->input);
      return -1;
    }
  for (size_t i = 0; i < rn->c->ndisks; i++) {
    const struct vb_chain_disk *d = &rn->c->disks[i];
    struct vb_chain_file **files;

    if (!wanted (o, d->disk))
      continue;
    files = vb_chain_select (rn->c, d, o->until);
    if (!files || !add_job (rn, d, files))
      return -1;
  }
  if (rn->njobs == 0) {
    vb_set_error ("%s holds no data files: not a backup directory", o->input);
    return -1;
  }
  return 0;
}

/* vmconfig.<ident>.xml of the restore point (the last file applied). */
static bool
exists (const struct run *rn, const char *name)
{
  struct vb_target_stat st;

  return vb_target_stat (rn->t, name, &st) == 0 && st.exists;
}

static int
load_xml (struct run *rn)
{
  const struct job *j = &rn->jobs[0];
  const struct vb_chain_file *f = j->files[j->nfiles - 1];
  const char *ident = vb_chain_file_ident (f);
  CLEANUP_FREE char *name = vb_bset_vmconfig_name (ident);
  CLEANUP_FREE char *path = name ? vb_path_join (rn->o->input, name) : NULL;
  size_t len;

  if (path && !exists (rn, name) && f->level == VB_LEVEL_DIFF) {
    free (name);
    free (path);
    name = vb_bset_vmconfig_name (f->meta.parent_checkpoint);
    path = name ? vb_path_join (rn->o->input, name) : NULL;
  }
  if (!path || !exists (rn, name)) {
    if (!rn->o->adjust_config && !rn->o->define)
      return 0;                 /* nothing to copy; images still restore */
    vb_set_error ("%s: no VM definition of the restore point, so -c/-D "
                  "cannot adjust it", path ? path : ident);
    return -1;
  }
  rn->xml = vb_target_read (rn->t, name, &len);
  rn->xml_name = STEAL (name);
  return rn->xml ? 0 : -1;
}

/* Where each job writes; refuse to overwrite without --force. */
static int
plan_targets (struct run *rn)
{
  for (size_t i = 0; i < rn->njobs; i++) {
    struct job *j = &rn->jobs[i];
    struct stat st;

    if (rn->o->to && rn->rem) {
      vb_set_error ("--to writes into a local file or device: a remote "
                    "restore (-U %s) writes new images into -o", rn->o->uri);
      return -1;
    }
    if (rn->o->to) {
      j->final = realpath (rn->o->to, NULL);
      if (!j->final || stat (j->final, &st) == -1) {
        vb_set_error_errno (errno, "--to %s: give an existing file or block "
                            "device", rn->o->to);
        return -1;
      }
      j->block = S_ISBLK (st.st_mode);
      continue;
    }
    if (asprintf (&j->final, "%s/%s.%s", rn->outdir, j->d->disk, rn->fmt) < 0 ||
        asprintf (&j->partial, "%s.partial", j->final) < 0) {
      vb_set_error_errno (ENOMEM, "restore");
      return -1;
    }
    if (!rn->o->force && path_exists (rn, j->final) != 0) {
      vb_set_error ("%s exists%s%s: remove it, choose another -o, or give "
                    "--force to overwrite it", j->final,
                    rn->rem ? " on host " : "", rn->rem ? rn->rem->host : "");
      return -1;
    }
  }
  return 0;
}

/* The VM definition is not overwritten without --force either. */
static int
check_xml_target (struct run *rn)
{
  CLEANUP_FREE char *path = NULL;

  if (!rn->xml || rn->o->force)
    return 0;
  if (!(path = vb_path_join (rn->outdir, rn->xml_name)))
    return -1;
  if (path_exists (rn, path) != 0) {
    vb_set_error ("%s exists: remove it, choose another -o, or give "
                  "--force to overwrite it", path);
    return -1;
  }
  return 0;
}

/* The name of the adjusted VM: -N, or restore_<name>.  Malloc'd. */
static char *
new_name (const struct run *rn)
{
  CLEANUP_FREE char *old = NULL;
  char *name;

  if (rn->o->name)
    return strdup (rn->o->name);
  if (!(old = vb_domain_xml_name (rn->xml, strlen (rn->xml))))
    return NULL;
  return asprintf (&name, "restore_%s", old) < 0 ? NULL : name;
}

/* -D fails at the end if the name is taken: find out before writing. */
static int
check_define_name (const struct run *rn)
{
  CLEANUP_FREE char *name = NULL;

  if (!rn->o->define || !rn->xml)
    return 0;
  if (!(name = new_name (rn)))
    return -1;
  return vb_check_domain_name_free (rn->o->uri, name);
}

static int
plan (struct run *rn)
{
  const struct vb_restore_opts *o = rn->o;

  if (o->to && o->sequence == NULL &&
      (!o->disks || !o->disks[0] || o->disks[1])) {
    vb_set_error ("--to writes one disk: name it with -d DISK");
    return -1;
  }
  if (!(rn->t = vb_target_dir_open (o->input, NULL)))
    return -1;
  rn->c = vb_chain_scan (rn->t);
  if (!rn->c)
    return -1;
  if ((o->sequence ? plan_sequence (rn) : plan_disks (rn)) == -1 ||
      load_xml (rn) == -1 || check_define_name (rn) == -1)
    return -1;
  /* 0755: a VM defined on the images must reach them as QEMU's user
   * (libvirt relabels the image files themselves, which are 0600). */
  if (rn->rem) {
    if (!(rn->outdir = vb_remote_mkdir_realpath (rn->rem, o->outdir)))
      return -1;
  }
  else if (vb_mkdir_p (o->outdir, 0755) == -1)
    return -1;
  else if (!(rn->outdir = realpath (o->outdir, NULL))) {
    vb_set_error_errno (errno, "%s", o->outdir);
    return -1;
  }
  if (plan_targets (rn) == -1)
    return -1;
  return check_xml_target (rn);
}

/* "-o compat=1.1,cluster_size=65536,..." from the source's qemu-img info,
 * so the restored image has the source's qcow2 features. */
static char *
qcow_options (const struct run *rn, const struct job *j)
{
  const struct vb_chain_file *f = j->files[j->nfiles - 1];
  CLEANUP_FREE char *name = NULL, *path = NULL, *text = NULL;
  CLEANUP_IMAGE_INFO struct vb_image_info *o = NULL;
  char *opts = NULL;
  size_t len;

  name = vb_bset_qcow_json_name (j->d->disk, vb_chain_file_ident (f));
  path = name ? vb_path_join (rn->o->input, name) : NULL;
  if (!path || !exists (rn, name) ||
      !(text = vb_target_read (rn->t, name, &len)))
    return strdup ("");
  if (!(o = vb_image_info_parse (text, len, path)))
    return strdup ("");
  FILE *fp = open_memstream (&opts, &len);
  if (fp) {
    if (o->compat)
      fprintf (fp, "compat=%s,", o->compat);
    if (o->cluster_size)
      fprintf (fp, "cluster_size=%" PRId64 ",", o->cluster_size);
    if (o->lazy_refcounts != -1)
      fprintf (fp, "lazy_refcounts=%s,", o->lazy_refcounts ? "on" : "off");
    if (o->compression_type && strcmp (o->compression_type, "zlib") != 0)
      fprintf (fp, "compression_type=%s,", o->compression_type);
    fclose (fp);
    if (opts && len)
      opts[len - 1] = '\0';     /* the last comma */
  }
  return opts;
}

static int
create_image (const struct run *rn, struct job *j, uint64_t size)
{
  CLEANUP_FREE char *opts = NULL;

  if (strcmp (rn->fmt, "qcow2") == 0 && !(opts = qcow_options (rn, j)))
    return -1;
  remove_path (rn, j->partial);
  j->created = true;
  if (vb_host_img_create (rn->rem, j->partial, rn->fmt, opts, size) == -1 ||
      (rn->rem ? vb_remote_run (rn->rem, (const char *const[]) {
                   "chmod", "0600", "--", j->partial, NULL })
               : chmod (j->partial, 0600)) == -1) {
    vb_prefix_error ("create %s", j->partial);
    return -1;
  }
  return 0;
}

/* The .chksum covers each whole file, so the files of the point are
 * checked by a thread reading them alongside the writes. */
struct sumcheck {
  struct vb_target *t;
  struct vb_chain_file *const *files;
  const struct vb_view *v;
  int ret;
  char msg[1024];
};

/* Only files the point reads are checked: one whose data later files
 * cover entirely is not needed, as a file past the point is not, and
 * reading it whole would make a long chain cost the sum of its files. */
static void *
sum_thread (void *opaque)
{
  struct sumcheck *sc = opaque;

  for (size_t i = 0; sc->files[i] && sc->ret != -1; i++)
    if (vb_view_file_used (sc->v, i))
      sc->ret = vb_check_chksum (sc->t, sc->files[i]->name);
  if (sc->ret == -1)
    snprintf (sc->msg, sizeof sc->msg, "%s", vb_get_error ());
  return NULL;
}

/* Read-through cache of the restore: two of the largest pieces (the
 * peer's lz4 pieces are 32 MiB), so readers of one never evict it. */
#define RESTORE_CACHE (2 * VB_STREAM_MAX_PIECE + (8u << 20))

static int
write_point (const struct run *rn, struct job *j, struct vb_nbd_writer *w)
{
  struct vb_view *v = vb_view_open_files (rn->t, j->files, RESTORE_CACHE);
  struct sumcheck sc = { .t = rn->t, .files = j->files, .v = v };
  pthread_t th;
  bool threaded;
  int ret;

  if (!v)
    return -1;
  threaded = pthread_create (&th, NULL, sum_thread, &sc) == 0;
  if (!threaded)
    sum_thread (&sc);
  /* A new image reads as zeros: only the data needs writing. */
  ret = vb_write_point (w, v, j->partial != NULL, rn->o->cancel, &j->st);
  if (threaded)
    pthread_join (th, NULL);
  vb_view_close (v);
  if (ret == 0 && sc.ret == -1) {
    vb_set_error_str (sc.msg);
    ret = -1;
  }
  return ret;
}

static int
write_files (const struct run *rn, struct job *j, struct vb_nbd_writer *w,
             uint64_t size)
{
  if (!j->partial && vb_nbd_writer_size (w) < size) {
    vb_set_error ("%s holds %" PRIu64 " bytes, less than the %" PRIu64
                  " bytes of disk %s: give a larger target", j->final,
                  vb_nbd_writer_size (w), size, j->d->disk);
    return -1;
  }
  if (write_point (rn, j, w) == -1)
    return -1;
  return vb_nbd_writer_finish (w);
}

/* A qcow2 that points at other files (a backing file, an external data
 * file) may have been written by a guest into a raw image: writing through
 * it would reach files the user never named. */
static bool
qcow2_points_elsewhere (const struct vb_image_info *info)
{
  return info->backing_file || info->data_file;
}

static const char *
probed_format (const char *path, const struct vb_image_info *info)
{
  const char *f = info->format;

  if (!f) {
    vb_set_error ("%s: qemu-img info shows no format", path);
    return NULL;
  }
  if (!strcmp (f, "raw"))
    return "raw";
  if (!strcmp (f, "qcow2") && !qcow2_points_elsewhere (info))
    return "qcow2";
  if (!strcmp (f, "qcow2"))
    vb_set_error ("%s is a qcow2 image with a backing or data file: give "
                  "--format qcow2 to write through it, or --format raw to "
                  "overwrite it", path);
  else
    vb_set_error ("%s is a %s image: restore writes raw or qcow2; convert "
                  "it, or pass --format to override", path, f);
  return NULL;
}

/* The format of an existing --to target.  A block device is raw: what a
 * guest wrote at its start may look like a qcow2 header, and taking it for
 * one would write through metadata that is not ours.  A regular file is
 * probed, since restoring into a user's qcow2 file as raw would destroy it. */
static const char *
target_format (const char *path)
{
  struct stat st;
  CLEANUP_IMAGE_INFO struct vb_image_info *info = NULL;

  if (stat (path, &st) == 0 && !S_ISREG (st.st_mode))
    return "raw";
  if (!(info = vb_qemu_img_info (path)))
    return NULL;
  return probed_format (path, info);
}

static struct vb_nbd_writer *
start_server (const struct run *rn, struct vb_server *srv, const char *image,
              const char *fmt)
{
  const struct vb_restore_opts *o = rn->o;
  struct vb_rnbd_opts ro = {
    .image = image, .format = fmt, .addr = o->nbd_ip,
    .port_lo = o->nbd_port_lo ? o->nbd_port_lo : 10809,
    .port_hi = o->nbd_port_lo ? o->nbd_port_hi : 10908,
    .tls_dir = o->tls ? "/etc/pki/qemu" : NULL, .cancel = o->cancel,
  };

  if (!rn->rem)
    return vb_server_start (srv, image, fmt, o->cancel);
  if (ro.port_hi < ro.port_lo)
    ro.port_hi = ro.port_lo;
  return vb_server_start_remote (srv, rn->rem, &ro,
                                 o->tls_dir ? o->tls_dir : "/etc/pki/qemu");
}

static int
run_job (const struct run *rn, struct job *j)
{
  uint64_t size = j->files[j->nfiles - 1]->meta.virtual_size;
  struct vb_server srv;
  struct vb_nbd_writer *w;
  int ret;

  if (j->partial && create_image (rn, j, size) == -1)
    return -1;
  j->fmt = j->partial || rn->o->format ? rn->fmt : target_format (j->final);
  if (!j->fmt)
    return -1;
  w = start_server (rn, &srv, j->partial ? j->partial : j->final, j->fmt);
  if (!w) {
    vb_prefix_error ("disk %s", j->d->disk);
    return -1;
  }
  ret = write_files (rn, j, w, size);
  if (ret == -1 && vb_nbd_writer_errno (w) == ENOSPC) {
    CLEANUP_FREE char *msg = strdup (vb_get_error ());

    vb_set_error ("%s: free space there, or restore elsewhere with %s",
                  msg ? msg : "no space left", j->partial ? "-o" : "--to");
  }
  vb_nbd_writer_close (w);
  vb_server_stop (&srv);
  if (ret == -1)
    vb_prefix_error ("disk %s", j->d->disk);
  return ret;
}

static int
adjust_xml (struct run *rn)
{
  CLEANUP_FREE struct vb_xml_disk *xd = calloc (rn->njobs, sizeof *xd);
  CLEANUP_FREE char *newname = new_name (rn);
  char *adjusted;

  if (!xd || !newname)
    return -1;
  for (size_t i = 0; i < rn->njobs; i++)
    xd[i] = (struct vb_xml_disk) {
      .target = rn->jobs[i].d->disk, .path = rn->jobs[i].final,
      .format = rn->jobs[i].fmt,
      .block = rn->jobs[i].block,
    };
  adjusted = vb_adjust_domain_xml (rn->xml, strlen (rn->xml), xd, rn->njobs,
                                   newname);
  if (!adjusted)
    return -1;
  free (rn->xml);
  rn->xml = adjusted;
  return 0;
}

static int
commit_images (struct run *rn)
{
  for (size_t i = 0; i < rn->njobs; i++) {
    struct job *j = &rn->jobs[i];

    if (j->partial && rn->rem &&
        vb_remote_rename (rn->rem, j->partial, j->final) == -1)
      return -1;
    if (j->partial && !rn->rem && rename (j->partial, j->final) == -1) {
      vb_set_error_errno (errno, "rename %s to %s", j->partial, j->final);
      return -1;
    }
    j->created = false;
  }
  return rn->rem ? 0 : vb_fsync_dir (rn->outdir);
}

static void
fill_result (struct run *rn, struct vb_restore_result *r)
{
  r->disks = calloc (rn->njobs, sizeof *r->disks);
  if (!r->disks)
    return;
  r->ndisks = rn->njobs;
  r->notes = rn->notes;
  rn->notes = NULL;
  for (size_t i = 0; i < rn->njobs; i++) {
    const struct job *j = &rn->jobs[i];
    const struct vb_chain_file *last = j->files[j->nfiles - 1];

    r->disks[i] = (struct vb_restore_disk) {
      .disk = strdup (j->d->disk), .image = strdup (j->final),
      .format = strdup (j->fmt),
      .virtual_size = last->meta.virtual_size, .nfiles = j->nfiles,
      .point = strdup (last->level == VB_LEVEL_DIFF || last->level ==
                       VB_LEVEL_COPY ? last->name : last->meta.checkpoint_name),
      .data_bytes = j->st.data, .zero_bytes = j->st.zero,
    };
  }
}

static int
finish (struct run *rn, struct vb_restore_result *r)
{
  const struct vb_restore_opts *o = rn->o;

  if (rn->xml && (o->adjust_config || o->define) && adjust_xml (rn) == -1)
    return -1;
  if (commit_images (rn) == -1)
    return -1;
  fill_result (rn, r);
  if (rn->xml) {
    r->vmconfig = vb_path_join (rn->outdir, rn->xml_name);
    if (!r->vmconfig ||
        (rn->rem ? vb_remote_put (rn->rem, r->vmconfig, rn->xml,
                                  strlen (rn->xml))
                 : vb_write_file_atomic (rn->outdir, rn->xml_name, rn->xml,
                                         strlen (rn->xml), 0600)) == -1)
      return -1;
  }
  if (o->define && !(r->defined = vb_define_domain (o->uri, rn->xml)))
    return -1;
  return 0;
}

static void
run_free (struct run *rn)
{
  for (size_t i = 0; i < rn->njobs; i++) {
    struct job *j = &rn->jobs[i];

    if (j->created && !rn->o->keep_partial)
      remove_path (rn, j->partial);
    free (j->files);
    free (j->final);
    free (j->partial);
  }
  free (rn->jobs);
  free (rn->outdir);
  free (rn->xml);
  free (rn->xml_name);
  vb_strv_free (rn->notes);
  vb_chain_free (rn->c);
  vb_target_close (rn->t);
  vb_remote_clear (&rn->host);
}

static int
check_opts (const struct vb_restore_opts *o, const char **fmt)
{
  *fmt = o->format ? o->format : "qcow2";
  if (strcmp (*fmt, "qcow2") != 0 && strcmp (*fmt, "raw") != 0) {
    vb_set_error ("unknown image format '%s': use qcow2 or raw", *fmt);
    return -1;
  }
  if (!o->input || !o->outdir) {
    vb_set_error ("give the backup directory (-i) and the output "
                  "directory (-o)");
    return -1;
  }
  return 0;
}

/* The URI decides where the images go: a host it names gets them. */
static int
open_host (struct run *rn)
{
  int remote = vb_remote_parse (rn->o->uri, &rn->host);

  if (remote <= 0)
    return remote;
  rn->rem = &rn->host;
  if (rn->o->timeout > 0)
    rn->host.timeout = rn->o->timeout;
  vb_virt_set_timeout (rn->o->timeout);
  vb_virt_set_cancel (rn->o->cancel);
  vb_nbd_set_io_timeout (rn->o->timeout);
  if (!rn->o->nbd_ip) {
    vb_set_error ("a restore onto host %s writes over NBD on TCP: give "
                  "--nbd-ip, the address there on which qemu-nbd is to "
                  "listen", rn->host.host);
    return -1;
  }
  return vb_remote_session_start (&rn->host);
}

int
vb_restore (const struct vb_restore_opts *o, struct vb_restore_result *r)
{
  struct run rn = { .o = o };
  int ret = -1;

  memset (r, 0, sizeof *r);
  if (check_opts (o, &rn.fmt) == -1 || open_host (&rn) == -1)
    return -1;
  if (plan (&rn) == -1)
    goto out;
  for (size_t i = 0; i < rn.njobs; i++)
    if (run_job (&rn, &rn.jobs[i]) == -1)
      goto out;
  ret = finish (&rn, r);
 out:
  run_free (&rn);
  return ret;
}

void
vb_restore_result_clear (struct vb_restore_result *r)
{
  for (size_t i = 0; i < r->ndisks; i++) {
    free (r->disks[i].disk);
    free (r->disks[i].image);
    free (r->disks[i].format);
    free (r->disks[i].point);
  }
  free (r->disks);
  free (r->vmconfig);
  free (r->defined);
  vb_strv_free (r->notes);
  memset (r, 0, sizeof *r);
}
