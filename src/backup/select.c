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

#include <json-c/json.h>

#include "backup/run.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "common/log.h"

static bool
in_list (char **list, const char *s)
{
  for (; list && *list; list++)
    if (!strcmp (*list, s))
      return true;
  return false;
}

/* qcow2 compat "0.10" has no persistent bitmaps. */
static int
check_qcow2_v3 (struct vb_disk *disk)
{
  CLEANUP_FREE char *info = vb_qemu_img_info (disk->path);
  struct json_object *j, *fs, *data, *compat;
  int ret = 0;

  if (!info)
    return 0;                  /* not a local file: let libvirt decide */
  j = json_tokener_parse (info);
  if (j && json_object_object_get_ex (j, "format-specific", &fs) &&
      json_object_object_get_ex (fs, "data", &data) &&
      json_object_object_get_ex (data, "compat", &compat) &&
      !strcmp (json_object_get_string (compat), "0.10")) {
    vb_set_error ("disk %s (%s) is qcow2 v2: persistent bitmaps need qcow2 "
                  "v3: use -l copy", disk->target, disk->path);
    ret = -1;
  }
  json_object_put (j);
  return ret;
}

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
  if (in_list (x->o.exclude, disk->target) ||
      (x->o.include && !in_list (x->o.include, disk->target)))
    return 0;
  if (raw && (x->plan.level == VB_LEVEL_INC || x->plan.level == VB_LEVEL_DIFF)) {
    vb_info ("skipping raw disk %s: raw disks are saved in full and copy "
             "backups only", disk->target);
    return 0;
  }
  if (!raw && x->plan.level != VB_LEVEL_COPY && check_qcow2_v3 (disk) < 0)
    return -1;
  return 1;
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
    char xp[256];
    snprintf (xp, sizeof xp,
              "string(/domaincheckpoint/disks/disk[@name='%s']/@checkpoint)", t);
    CLEANUP_FREE char *mode = vb_xml_string (cxml, xp);
    if (!mode || strcmp (mode, "bitmap")) {
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
  return 0;
}


/* Could an incremental from PARENT cover DISK?  0 yes, else -1 with the
 * reason in the error. */
static int
disk_in_chain (struct run *x, const char *cxml, struct vb_disk *disk,
               const char *parent)
{
  char xp[256];
  CLEANUP_FREE char *mode = NULL;
  int st;

  snprintf (xp, sizeof xp,
            "string(/domaincheckpoint/disks/disk[@name='%s']/@checkpoint)",
            disk->target);
  mode = vb_xml_string (cxml, xp);
  if (!mode || strcmp (mode, "bitmap")) {
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

int
vb_run_chain_usable (struct run *x)
{
  const char *parent = x->plan.parent;
  CLEANUP_FREE char *cxml = NULL;

  if (!parent)
    return 1;
  cxml = vb_checkpoint_exists (x->d, parent) ? vb_checkpoint_xml (x->d, parent)
                                             : vb_set_load_checkpoint (x->o.cptdir, parent);
  if (!cxml) {
    vb_set_error ("checkpoint %s is gone and was not saved", parent);
    return 0;
  }
  for (size_t i = 0; i < x->d->ndisks; i++) {
    struct vb_disk *disk = &x->d->disks[i];
    if (disk->skip != VB_DISK_BACKUP ||
        (disk->format && !strcmp (disk->format, "raw")) ||
        in_list (x->o.exclude, disk->target) ||
        (x->o.include && !in_list (x->o.include, disk->target)))
      continue;
    if (disk_in_chain (x, cxml, disk, parent) < 0)
      return 0;
  }
  return 1;
}
