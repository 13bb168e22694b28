/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Which disks a run backs up, and whether the chain can go on for them. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup/run.h"
#include "backupset/chain.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "common/log.h"

static const char *
skip_reason (struct vb_disk *disk)
{
  switch (disk->skip) {
  case VB_DISK_SKIP_DEVICE: return disk->device;
  case VB_DISK_SKIP_RAW: return "raw format (use -r to include it)";
  case VB_DISK_SKIP_NOSOURCE: return "no source";
  default: return NULL;
  }
}

/* Decide whether one disk is in this run; 1 yes, 0 no, -1 error. */
static int
select_one (struct run *x, struct vb_disk *disk)
{
  const char *why = skip_reason (disk);
  bool raw = !strcmp (disk->format ? disk->format : "", "raw");

  if (why) {
    vb_info ("skipping disk %s: %s", disk->target, why);
    return 0;
  }
  if (vb_strv_has (x->o.exclude, disk->target) ||
      (x->o.include && !vb_strv_has (x->o.include, disk->target)))
    return 0;
  if (raw && (x->plan.level == VB_LEVEL_INC || x->plan.level == VB_LEVEL_DIFF)) {
    vb_info ("skipping raw disk %s: raw disks are saved in full and copy "
             "backups only", disk->target);
    return 0;
  }
  return 1;
}

/* Does checkpoint XML CXML hold a bitmap of disk TARGET? */
static bool
has_bitmap (const char *cxml, const char *target)
{
  char xp[256];
  CLEANUP_FREE char *mode = NULL;

  snprintf (xp, sizeof xp,
            "string(/domaincheckpoint/disks/disk[@name='%s']/@checkpoint)",
            target);
  mode = vb_xml_string (cxml, xp);
  return mode && !strcmp (mode, "bitmap");
}

/* Before the job starts: a lost bitmap (removed, or an unclean QEMU exit)
 * would otherwise fail inside libvirt with a less helpful message. */
static int
check_bitmap (struct run *x, const struct vb_disk *disk, const char *parent)
{
  int st = vb_disk_bitmap_state (x->d, disk, parent);

  if (st < 0)
    return -1;
  if (st == VB_BITMAP_OK)
    return 0;
  vb_set_error ("disk %s: the bitmap of checkpoint %s is %s: the chain "
                "cannot continue; run a full backup (-l full) into a new "
                "directory", disk->target, parent,
                st == 0 ? "missing" : "inconsistent (QEMU did not shut down "
                "cleanly)");
  return -1;
}

/* An incremental needs every disk in the parent checkpoint and its bitmap
 * in the image; otherwise the backup would silently miss changes. */
int
vb_run_check_chain_disks (struct run *x)
{
  const char *parent = x->plan.parent;
  CLEANUP_FREE char *cxml = parent ? vb_checkpoint_xml (x->d, parent) : NULL;

  if (!parent)
    return 0;
  if (!cxml)
    return -1;
  for (size_t i = 0; i < x->nsel; i++) {
    const char *t = x->sel[i].disk->target;
    if (!has_bitmap (cxml, t)) {
      vb_set_error ("disk %s is not part of checkpoint %s (added after the "
                    "full backup?): run a full backup (-l full) into a new "
                    "directory, or leave the disk out with -x %s", t, parent, t);
      return -1;
    }
    if (check_bitmap (x, x->sel[i].disk, parent) < 0)
      return -1;
  }
  return 0;
}

int
vb_run_select_disks (struct run *x)
{
  x->sel = calloc (x->d->ndisks + 1, sizeof *x->sel);
  if (!x->sel) {
    vb_set_error ("out of memory");
    return -1;
  }
  for (size_t i = 0; i < x->d->ndisks; i++) {
    struct vb_disk *disk = &x->d->disks[i];
    int r = select_one (x, disk);
    if (r < 0)
      return -1;
    if (r == 0)
      continue;
    x->sel[x->nsel].disk = disk;
    x->sel[x->nsel++].raw = !strcmp (disk->format ? disk->format : "", "raw");
  }
  for (char **s = x->o.include; s && *s; s++) {
    bool found = false;
    for (size_t i = 0; i < x->d->ndisks; i++)
      found |= !strcmp (x->d->disks[i].target, *s);
    if (!found) {
      vb_set_error ("domain '%s' has no disk '%s' (-i)", x->d->name, *s);
      return -1;
    }
  }
  if (x->nsel == 0) {
    vb_set_error ("domain '%s': no disk left to back up: check -i/-x/-r",
                  x->d->name);
    return -1;
  }
  return vb_run_facts_start (x);
}


/* Could an incremental from PARENT cover DISK?  0 yes, else -1 with the
 * reason in the error. */
static int
disk_in_chain (struct run *x, const char *cxml, struct vb_disk *disk,
               const char *parent)
{
  int st;

  if (!has_bitmap (cxml, disk->target)) {
    vb_set_error ("disk %s is not part of checkpoint %s", disk->target,
                  parent);
    return -1;
  }
  st = vb_disk_bitmap_state (x->d, disk, parent);
  if (st == VB_BITMAP_OK)
    return 0;
  if (st >= 0)
    vb_set_error ("disk %s: the bitmap of checkpoint %s is %s", disk->target,
                  parent, st == 0 ? "missing" : "inconsistent");
  return -1;
}

/* ---- can the chain in the directory be extended? ---- */

/* Every checkpoint of the chain that libvirt holds must be the one saved
 * with the chain, not another backup's of the same name (a full into
 * another directory makes a new "<prefix>.0"): an incremental from it
 * would miss the changes between the two.  A checkpoint libvirt lost is
 * left to vb_plan_apply, which redefines it from the saved XML.  Only the
 * newest needs its saved XML: nothing else can prove it, while an older
 * one without it is still vouched for by its descendants. */
static int
check_identity (struct run *x)
{
  size_t n = vb_strv_len (x->plan.chain);

  for (size_t i = 0; i < n; i++) {
    const char *name = x->plan.chain[i];
    CLEANUP_FREE char *saved = NULL;
    int r;

    if (!vb_checkpoint_exists (x->d, name))
      continue;
    if (!(saved = vb_bset_load_checkpoint (x->plan.cpt, name))) {
      CLEANUP_FREE char *e = strdup (vb_get_error ());
      if (i + 1 < n)
        continue;
      vb_set_error ("the chain in %s ends at checkpoint %s, but its saved "
                    "XML cannot be read (%s), so nothing proves that domain "
                    "'%s' still holds that very checkpoint (give -C DIR if "
                    "the chain keeps its checkpoint XML elsewhere)",
                    x->o.outdir, name, e ? e : "", x->d->name);
      return -1;
    }
    if ((r = vb_checkpoint_matches (x->d, name, saved)) < 0)
      return -1;
    if (r == 0) {
      CLEANUP_FREE char *why = strdup (vb_get_error ());
      vb_set_error ("checkpoint %s of domain '%s' was made by another "
                    "backup than the one the chain in %s holds (%s), so an "
                    "incremental here would miss changes", name, x->d->name,
                    x->o.outdir, why ? why : "");
      return -1;
    }
  }
  return 0;
}

/* The files of DISK that a new file depends on must be exactly the chain
 * of the .cpt, each one whole; else restore would fail at them. */
static int
check_files (struct run *x, const struct vb_chain *c, const char *disk)
{
  const struct vb_chain_disk *cd = vb_chain_find_disk (c, disk);
  size_t n = vb_strv_len (x->plan.chain);
  bool ok = cd && cd->nfiles == n;

  for (size_t i = 0; ok && i < n; i++)
    ok = !strcmp (cd->files[i]->meta.checkpoint_name, x->plan.chain[i]);
  if (!ok) {
    CLEANUP_FREE char *why = vb_chain_disk_problems (c, disk);
    vb_set_error ("disk %s: the chain in %s is not whole: %s", disk,
                  x->o.outdir, why ? why : cd ? "its files do not end at "
                  "the checkpoint the .cpt file ends with" : "it has no "
                  "data file there");
    return -1;
  }
  for (size_t i = 0; i < n; i++)
    if (vb_chain_file_check (c, cd->files[i]) < 0) {
      vb_prefix_error ("disk %s: the chain in %s is not whole", disk,
                       x->o.outdir);
      return -1;
    }
  return 0;
}

/* The parent checkpoint's XML: libvirt's, else the saved one. */
static char *
parent_xml (struct run *x)
{
  const char *parent = x->plan.parent;

  if (vb_checkpoint_exists (x->d, parent))
    return vb_checkpoint_xml (x->d, parent);
  return vb_bset_load_checkpoint (x->plan.cpt, parent);
}

static int
advise (bool files)
{
  CLEANUP_FREE char *why = strdup (vb_get_error ());

  vb_set_error ("%s; %suse -l auto (sets this chain aside and starts a new "
                "one here) or a full backup into a new directory",
                why ? why : "", files ? "an incremental on it could not be "
                "restored; " : "");
  return -1;
}

int
vb_run_check_chain (struct run *x)
{
  CLEANUP_FREE char *cxml = NULL;
  struct vb_chain *c;
  int r = 0;

  if (!x->plan.parent)
    return 0;
  if (check_identity (x) < 0)
    return advise (false);
  /* A checkpoint lost without saved XML is vb_plan_apply's to report. */
  if (!(cxml = parent_xml (x)))
    return 0;
  if (!(c = vb_chain_scan (x->t)))
    return -1;
  /* A disk not in the checkpoint is vb_run_check_chain_disks' to report. */
  for (size_t i = 0; i < x->nsel && r == 0; i++)
    if (!x->sel[i].raw && has_bitmap (cxml, x->sel[i].disk->target))
      r = check_files (x, c, x->sel[i].disk->target);
  vb_chain_free (c);
  return r < 0 ? advise (true) : 0;
}

/* Would -l auto back up DISK in an incremental? */
static bool
auto_candidate (struct run *x, const struct vb_disk *disk)
{
  return disk->skip == VB_DISK_BACKUP &&
    !(disk->format && !strcmp (disk->format, "raw")) &&
    !vb_strv_has (x->o.exclude, disk->target) &&
    (!x->o.include || vb_strv_has (x->o.include, disk->target));
}

int
vb_run_chain_usable (struct run *x)
{
  const char *parent = x->plan.parent;
  CLEANUP_FREE char *cxml = NULL;
  struct vb_chain *c;
  int r = 0;

  if (!parent)
    return 1;
  if (check_identity (x) < 0)
    return 0;
  if (!(cxml = parent_xml (x))) {
    vb_set_error ("checkpoint %s is gone and was not saved", parent);
    return 0;
  }
  if (!(c = vb_chain_scan (x->t)))
    return 0;
  for (size_t i = 0; i < x->d->ndisks && r == 0; i++) {
    struct vb_disk *disk = &x->d->disks[i];
    if (auto_candidate (x, disk))
      r = disk_in_chain (x, cxml, disk, parent) < 0 ? -1 :
        check_files (x, c, disk->target);
  }
  vb_chain_free (c);
  return r < 0 ? 0 : 1;
}
