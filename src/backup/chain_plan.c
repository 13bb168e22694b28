/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Checkpoint chain decisions for one backup run. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backup/chain_plan.h"
#include "backupset/backupset.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/text.h"
#include "target/target.h"

/* Is NAME "<prefix>.<digits>"? */
static int
refuse_foreign (char *const *cps, const char *prefix, const char *domain)
{
  char list[1024] = "";
  size_t n = 0;

  for (char *const *c = cps; *c; c++) {
    /* virtback replicate's chain lives beside every backup chain. */
    if (vb_bset_is_checkpoint_of (*c, prefix) || vb_bset_is_checkpoint_of (*c, "virtback-replica"))
      continue;
    if (n++ < 8) {
      strncat (list, n > 1 ? ", " : "", sizeof list - strlen (list) - 1);
      strncat (list, *c, sizeof list - strlen (list) - 1);
    }
  }
  if (!n)
    return 0;
  vb_set_error ("domain '%s' has checkpoints not made with prefix '%s': %s; "
                "use --checkpoint-prefix to continue that chain, or remove "
                "them with 'virsh checkpoint-delete'", domain, prefix, list);
  return -1;
}

static char **
strv_dup (char *const *v)
{
  size_t n = vb_strv_len (v);
  char **r = calloc (n + 1, sizeof *r);

  for (size_t i = 0; r && i < n; i++)
    if (!(r[i] = strdup (v[i]))) {
      vb_strv_free (r);
      r = NULL;
    }
  if (!r)
    vb_set_error ("out of memory");
  return r;
}

/* An input of -1 returns -1 without a message of its own: the gathering's
 * is the reason. */
static int
resolve_level (const struct vb_plan_in *in, struct vb_plan *p)
{
  if (in->has_backup < 0)
    return -1;
  p->level = in->level;
  if (p->level == VB_LEVEL_AUTO)
    p->level = in->has_backup ? VB_LEVEL_INC : VB_LEVEL_FULL;
  if ((p->level == VB_LEVEL_FULL || p->level == VB_LEVEL_COPY) &&
      !in->print_only) {
    /* What a run that did not complete leaves behind does not count: the
     * retry of a failed first full must work in the same directory. */
    int ok = in->has_backup ? 0 : in->only_leftovers;
    if (ok < 0)
      return -1;
    if (!ok) {
      vb_set_error ("%s is not empty: a %s backup needs an empty or new "
                    "directory", in->outdir, vb_level_name (p->level));
      return -1;
    }
  }
  return 0;
}

static int
plan_incremental (const struct vb_plan_in *in, struct vb_plan *p)
{
  size_t n = vb_strv_len (p->chain);

  if (n == 0) {
    vb_set_error ("%s holds no backup chain of domain '%s': run a full "
                  "backup first (-l full)", in->outdir, in->domain);
    return -1;
  }
  p->parent = strdup (p->chain[n - 1]);
  /* Neither a name of this chain (pull jobs' points may sit between
   * its own) nor a pull job's: that chain goes on by itself. */
  p->meta_checkpoint = vb_bset_checkpoint_name (p->prefix, n, in->taken,
                                                p->chain);
  if (!p->parent || !p->meta_checkpoint)
    return -1;
  if (p->level == VB_LEVEL_INC) {
    p->checkpoint = strdup (p->meta_checkpoint);
    p->ident = strdup (p->meta_checkpoint);
  }
  else
    p->ident = vb_xasprintf ("%lld", in->now);
  return p->ident ? 0 : -1;
}

int
vb_plan_decide (const struct vb_plan_in *in, struct vb_plan *p)
{
  memset (p, 0, sizeof *p);
  p->prefix = in->prefix ? in->prefix : "virtback";
  if (refuse_foreign (in->checkpoints, p->prefix, in->domain) < 0 ||
      resolve_level (in, p) < 0)
    return -1;
  if (!in->chain || !(p->chain = strv_dup (in->chain)))
    return -1;                 /* unread: the gathering's error stands */
  switch (p->level) {
  case VB_LEVEL_INC:
  case VB_LEVEL_DIFF:
    return plan_incremental (in, p);
  case VB_LEVEL_FULL:
    p->checkpoint = vb_xasprintf ("%s.0", p->prefix);
    p->meta_checkpoint = p->checkpoint ? strdup (p->checkpoint) : NULL;
    p->ident = p->checkpoint ? strdup (p->checkpoint) : NULL;
    return p->ident ? 0 : -1;
  default:
    /* The peer writes "<prefix>.0" as a copy's checkpointName; keep that
     * so its restore treats our copies alike. */
    p->meta_checkpoint = vb_xasprintf ("%s.0", p->prefix);
    p->ident = strdup ("copy");
    return p->ident ? 0 : -1;
  }
}

/* The directory part of IN.  After the first read that fails the rest stay
 * unknown, so the thread's error is that read's. */
static void
gather_dir (const struct vb_backup_opts *o, struct vb_target *t,
            struct vb_plan_in *in, char ***chain)
{
  if (!vb_target_readable (t)) {     /* a stream out: nothing there yet */
    in->has_backup = 0;
    in->only_leftovers = 1;
    in->chain = *chain = calloc (1, sizeof **chain);
    return;
  }
  in->only_leftovers = -1;
  in->has_backup = vb_bset_has_backup (t, o->domain);
  if (in->has_backup > 0)
    in->only_leftovers = 0;
  else if (in->has_backup == 0)
    in->only_leftovers = vb_bset_only_leftovers (t);
  if (in->only_leftovers >= 0)
    *chain = vb_cpt_read (t, o->domain);
  in->chain = *chain;
}

/* The domain's checkpoints that pull jobs made, NULL-terminated. */
static char **
jobs_checkpoints (struct vb_domain *d, char **cps)
{
  size_t n = 0;
  char **v = calloc (vb_strv_len (cps) + 1, sizeof *v);

  if (!v) {
    vb_set_error ("out of memory");
    return NULL;
  }
  for (; *cps; cps++) {
    int r = vb_checkpoint_of_job (d, *cps);
    if (r < 0 || (r == 1 && !(v[n++] = strdup (*cps)))) {
      vb_strv_free (v);
      return NULL;
    }
  }
  return v;
}

int
vb_plan_make (struct vb_domain *d, const struct vb_backup_opts *o,
              struct vb_target *t, struct vb_target *cpt, struct vb_plan *p)
{
  CLEANUP_STRV char **cps = vb_checkpoint_list (d);
  CLEANUP_STRV char **taken = cps ? jobs_checkpoints (d, cps) : NULL;
  CLEANUP_STRV char **chain = NULL;
  struct vb_plan_in in = {
    .level = o->level, .prefix = o->prefix, .print_only = o->print_only,
    .domain = d->name, .outdir = o->outdir, .checkpoints = cps,
    .taken = taken, .now = (long long) time (NULL),
  };
  int r;

  memset (p, 0, sizeof *p);
  if (!cps || !taken)
    return -1;
  gather_dir (o, t, &in, &chain);
  r = vb_plan_decide (&in, p);
  p->cpt = cpt;
  return r;
}

int
vb_plan_delete_checkpoint (struct vb_domain *d, const char *name)
{
  if (!d->running)
    return vb_offline_checkpoint_delete (d, name);
  if (vb_checkpoint_delete (d, name, false) == 0)
    return 0;
  /* libvirt refuses when the bitmap is already gone; then only the
   * metadata is left to drop (bitmaps it still finds go as strays). */
  vb_warn ("checkpoint %s: %s: removing its metadata only", name,
           vb_get_error ());
  return vb_checkpoint_delete (d, name, true);
}

/* Delete NAME, raising *LATEST to its creation second.  A checkpoint whose
 * XML cannot be read counts as made now. */
static int
delete_noting (struct vb_domain *d, const char *name, long long *latest)
{
  CLEANUP_FREE char *xml = vb_checkpoint_xml (d, name);
  long long t = xml ? vb_checkpoint_created (xml) : -1;

  if (t < 0)
    t = (long long) time (NULL);
  if (t > *latest)
    *latest = t;
  return vb_plan_delete_checkpoint (d, name);
}

/* A checkpoint is known by its name and creation second (see
 * vb_checkpoint_same), and a run reuses the names of those it deletes: the
 * one it creates must be of a later second, which a quick run would not
 * always be. */
static void
wait_past (long long latest)
{
  struct timespec ts = { 0, 50000000 };

  while ((long long) time (NULL) <= latest)
    nanosleep (&ts, NULL);
}

/* Delete every checkpoint of ours, newest first so no merge is needed. */
static int
delete_ours (struct vb_domain *d, const char *prefix, long long *latest)
{
  CLEANUP_STRV char **cps = vb_checkpoint_list (d);
  size_t n = cps ? vb_strv_len (cps) : 0;

  if (!cps)
    return -1;
  while (n-- > 0) {
    if (!vb_bset_is_checkpoint_of (cps[n], prefix))
      continue;
    vb_info ("removing checkpoint %s", cps[n]);
    if (delete_noting (d, cps[n], latest) < 0)
      return -1;
  }
  return 0;
}

/* Bring back checkpoints libvirt lost (domain redefined or moved). */
static int
redefine_lost (struct vb_domain *d, struct vb_plan *p)
{
  for (char **c = p->chain; *c; c++) {
    if (vb_checkpoint_exists (d, *c))
      continue;
    CLEANUP_FREE char *xml = vb_bset_load_checkpoint (p->cpt, *c);
    if (!xml) {
      vb_prefix_error ("checkpoint %s is missing from domain '%s' and "
                       "cannot be redefined: run a full backup (-l full)",
                       *c, d->name);
      return -1;
    }
    if (vb_checkpoint_redefine (d, xml, d->running) < 0) {
      vb_prefix_error ("redefining lost checkpoint %s failed: run a full "
                       "backup (-l full)", *c);
      return -1;
    }
    vb_info ("redefined lost checkpoint %s", *c);
  }
  return 0;
}

struct stray_ctx {
  struct vb_domain *d;
  const char *prefix;
};

/* A bitmap named like our checkpoints whose checkpoint libvirt lost. */
static bool
is_stray (const char *name, void *opaque)
{
  struct stray_ctx *c = opaque;
  return vb_bset_is_checkpoint_of (name, c->prefix) && !vb_checkpoint_exists (c->d, name);
}

int
vb_plan_apply (struct vb_domain *d, struct vb_plan *p)
{
  struct stray_ctx sc = { d, p->prefix };
  long long latest = -1;

  switch (p->level) {
  case VB_LEVEL_FULL:
    if (delete_ours (d, p->prefix, &latest) < 0 ||
        vb_remove_stray_bitmaps (d, is_stray, &sc) < 0)
      return -1;
    break;
  case VB_LEVEL_INC:
  case VB_LEVEL_DIFF:
    if (redefine_lost (d, p) < 0)
      return -1;
    if (p->checkpoint && vb_checkpoint_exists (d, p->checkpoint)) {
      /* Left by a run that did not complete (the jobs' names were
       * skipped): it is not in .cpt, so no backup depends on it. */
      vb_info ("removing checkpoint %s of an incomplete backup",
               p->checkpoint);
      if (delete_noting (d, p->checkpoint, &latest) < 0)
        return -1;
    }
    break;
  default:
    break;
  }
  wait_past (latest);
  return 0;
}

int
vb_plan_commit (struct vb_domain *d, const struct vb_backup_opts *o,
                struct vb_plan *p, struct vb_target *t, bool cpt_in_target)
{
  size_t n = vb_strv_len (p->chain);
  CLEANUP_FREE char *xml = NULL, *name = NULL, *list = NULL;
  CLEANUP_FREE char **v = NULL;

  if (!p->checkpoint)
    return 0;
  if (!(xml = vb_checkpoint_xml (d, p->checkpoint)))
    return -1;
  /* Beside the data (a directory or the zip on stdout) unless -C chose
   * another place. */
  if (cpt_in_target) {
    if (!(name = vb_xasprintf ("checkpoints/%s.xml", p->checkpoint)) ||
        vb_target_put (t, name, xml, strlen (xml)) < 0)
      return -1;
  }
  else if (vb_bset_save_checkpoint (p->cpt, p->checkpoint, xml) < 0)
    return -1;
  if (p->level == VB_LEVEL_FULL)
    n = 0;
  v = calloc (n + 2, sizeof *v);
  if (!v) {
    vb_set_error ("out of memory");
    return -1;
  }
  memcpy (v, p->chain, n * sizeof *v);
  v[n] = p->checkpoint;
  free (name);
  if (!(list = vb_cpt_format (v)) || !(name = vb_bset_cpt_name (o->domain)))
    return -1;
  return vb_target_put (t, name, list, strlen (list));
}

void
vb_plan_free (struct vb_plan *p)
{
  free (p->checkpoint);
  free (p->meta_checkpoint);
  free (p->parent);
  free (p->ident);
  if (p->chain) {
    for (char **c = p->chain; *c; c++)
      free (*c);
    free (p->chain);
  }
}
