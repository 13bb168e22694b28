/* SPDX-License-Identifier: GPL-3.0-or-later */
/* chain.c: which checkpoint a job creates and starts from, and the job
 * chain it is recorded in.  The rules are virtback backup's (chain_plan.c):
 * checkpoints "<prefix>.<N>", foreign ones refused, a full deletes the
 * prefix's, an inc starts from its chain's newest point after checking
 * that libvirt's checkpoint of that name is the very one recorded. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backupset/backupset.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/text.h"
#include "job/internal.h"

static int
refuse_foreign (struct vb_domain *d, char *const *cps, const char *prefix)
{
  for (char *const *c = cps; *c; c++)
    if (!vb_bset_is_checkpoint_of (*c, prefix)) {
      vb_set_error ("domain '%s' has checkpoint %s not made with prefix "
                    "'%s': use --checkpoint-prefix to continue that chain, "
                    "or remove it with 'virsh checkpoint-delete'", d->name,
                    *c, prefix);
      return -1;
    }
  return 0;
}

int
vb_jcheckpoint_delete (struct vb_domain *d, const char *name)
{
  if (vb_checkpoint_delete (d, name, false) == 0)
    return 0;
  vb_warn ("checkpoint %s: %s: removing its metadata only", name,
           vb_get_error ());
  return vb_checkpoint_delete (d, name, true);
}

struct stray_ctx {
  struct vb_domain *d;
  const char *prefix;
};

static bool
is_stray (const char *name, void *opaque)
{
  struct stray_ctx *c = opaque;
  return vb_bset_is_checkpoint_of (name, c->prefix) && !vb_checkpoint_exists (c->d, name);
}

/* A checkpoint is known by its name and creation second, and a full
 * reuses names: the one it creates must be of a later second than every
 * one it deleted. */
static int
delete_ours (struct vb_domain *d, char **cps, const char *prefix)
{
  struct stray_ctx sc = { d, prefix };
  struct timespec ts = { 0, 50000000 };
  long long latest = -1;

  for (size_t n = vb_strv_len (cps); n-- > 0;) {
    CLEANUP_FREE char *xml = vb_checkpoint_xml (d, cps[n]);
    long long t = xml ? vb_checkpoint_created (xml) : -1;
    if (t < 0)
      t = (long long) time (NULL);
    if (t > latest)
      latest = t;
    vb_info ("removing checkpoint %s", cps[n]);
    if (vb_jcheckpoint_delete (d, cps[n]) < 0)
      return -1;
  }
  if (vb_remove_stray_bitmaps (d, is_stray, &sc) < 0)
    return -1;
  while ((long long) time (NULL) <= latest)
    nanosleep (&ts, NULL);
  return 0;
}

/* Index of the point of CHAIN that is libvirt's checkpoint NAME now (its
 * name and creation time), or -1; -2 when the chain has a point of that
 * name that a full has replaced since. */
static ssize_t
chain_find (struct vb_domain *d, struct json_object *chain, const char *name)
{
  for (size_t i = 0; i < json_object_array_length (chain); i++) {
    struct json_object *pt = json_object_array_get_idx (chain, i);
    if (strcmp (vb_jstr (pt, "name") ?: "", name))
      continue;
    return vb_checkpoint_matches (d, name, vb_jstr (pt, "xml")) == 1
           ? (ssize_t) i : -2;
  }
  return -1;
}

/* The chain's own parent must be libvirt's very checkpoint it recorded,
 * not another of the same name a full made since; --from names any
 * checkpoint of the prefix. */
static int
check_parent (struct vb_domain *d, struct json_object *chain,
              const char *parent, bool from)
{
  if (!vb_checkpoint_exists (d, parent)) {
    vb_set_error ("domain '%s' has no checkpoint %s (a full backup or job "
                  "replaced the chain): start a full job (-l full)",
                  d->name, parent);
    return -1;
  }
  if (from || chain_find (d, chain, parent) >= 0)
    return 0;
  vb_set_error ("checkpoint %s of domain '%s' is not the one the job chain "
                "recorded (a full backup made it anew), so an incremental "
                "from it would miss changes: start a full job (-l full)",
                parent, d->name);
  return -1;
}

/* The new point's number follows its parent's place in the chain it
 * extends (a parent outside the job chain starts one: number 1). */
static int
plan_from (struct vb_domain *d, struct json_object *chain, char **cps,
           const char *prefix, const char *parent, bool from,
           struct vb_jplan *p)
{
  ssize_t at;

  if (check_parent (d, chain, parent, from) < 0)
    return -1;
  at = chain_find (d, chain, parent);
  if (!(p->parent = strdup (parent)) ||
      !(p->checkpoint = vb_bset_checkpoint_name (prefix, at >= 0 ? at + 1 : 1,
                                                  cps, NULL))) {
    vb_set_error ("out of memory");
    return -1;
  }
  return 0;
}

static int
plan_inc (struct vb_domain *d, const struct vb_job_opts *o, char **cps,
          const char *prefix, struct vb_jplan *p)
{
  struct json_object *chain = vb_jchain_load (d->uuid, prefix);
  size_t n = chain ? json_object_array_length (chain) : 0;
  const char *last = n ? vb_jstr (json_object_array_get_idx (chain, n - 1),
                                  "name") : NULL;
  int r = -1;

  if (!chain)
    return -1;
  if (!o->from && !last)
    vb_set_error ("domain '%s' has no job chain of prefix '%s': start a full "
                  "job (-l full), or give --from CHECKPOINT", d->name, prefix);
  else if (o->from && !vb_bset_is_checkpoint_of (o->from, prefix))
    vb_set_error ("--from %s is not a checkpoint of prefix '%s'", o->from,
                  prefix);
  else
    r = plan_from (d, chain, cps, prefix, o->from ? o->from : last,
                   o->from != NULL, p);
  json_object_put (chain);
  return r;
}

int
vb_jplan_make (struct vb_domain *d, const struct vb_job_opts *o,
               const char *prefix, struct vb_jplan *p)
{
  CLEANUP_STRV char **cps = vb_checkpoint_list (d);

  memset (p, 0, sizeof *p);
  if (!cps || refuse_foreign (d, cps, prefix) < 0)
    return -1;
  if (o->inc)
    return plan_inc (d, o, cps, prefix, p);
  if (delete_ours (d, cps, prefix) < 0)
    return -1;
  p->checkpoint = vb_xasprintf ("%s.0", prefix);
  return p->checkpoint ? 0 : -1;
}

void
vb_jplan_free (struct vb_jplan *p)
{
  free (p->checkpoint);
  free (p->parent);
  memset (p, 0, sizeof *p);
}

static struct json_object *
point (const char *name, const char *xml)
{
  struct json_object *o = json_object_new_object ();

  json_object_object_add (o, "name", json_object_new_string (name));
  json_object_object_add (o, "xml", json_object_new_string (xml));
  return o;
}

/* The chain up to PARENT, then CP.  A parent outside the chain (--from a
 * backup's checkpoint) becomes the chain's first point. */
int
vb_jchain_record (struct vb_domain *d, const char *prefix, const char *cp,
                  const char *parent)
{
  struct json_object *old = parent ? vb_jchain_load (d->uuid, prefix) : NULL;
  struct json_object *chain = json_object_new_array ();
  CLEANUP_FREE char *xml = vb_checkpoint_xml (d, cp);
  CLEANUP_FREE char *pxml = NULL;
  ssize_t at = old ? chain_find (d, old, parent) : -1;
  int r = -1;

  if (!xml || (parent && !old))
    goto out;
  for (ssize_t i = 0; i <= at; i++)
    json_object_array_add (chain, json_object_get (
                             json_object_array_get_idx (old, i)));
  if (parent && at < 0) {
    if (!(pxml = vb_checkpoint_xml (d, parent)))
      goto out;
    json_object_array_add (chain, point (parent, pxml));
  }
  json_object_array_add (chain, point (cp, xml));
  r = vb_jchain_save (d->uuid, prefix, chain);
 out:
  json_object_put (old);
  json_object_put (chain);
  return r;
}
