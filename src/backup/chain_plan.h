/* SPDX-License-Identifier: GPL-3.0-or-later */
/* chain_plan.h (private to backup/): decide what one run does with the
 * checkpoint chain: level (auto resolved), the checkpoint to create, the
 * parent to start from, and the file identifiers. */
#ifndef VB_BACKUP_CHAIN_PLAN_H
#define VB_BACKUP_CHAIN_PLAN_H

#include "backup/backup.h"
#include "virt/virt.h"

struct vb_plan {
  enum vb_level level;
  char *checkpoint;            /* created by this run (full, inc), or NULL */
  char *meta_checkpoint;       /* checkpointName written in the metadata */
  char *parent;                /* inc/diff: the checkpoint to start from */
  char *ident;                 /* side-file identifier (vmconfig etc.) */
  char **chain;                /* the .cpt list as found */
  const char *prefix;
  const char *cptdir;
};

/* Pure checks and decisions; touches nothing. */
int vb_plan_make (struct vb_domain *d, const struct vb_backup_opts *o,
                  struct vb_plan *p);
/* Make libvirt's checkpoints match the plan: for full delete ours, for
 * inc/diff redefine lost ones from saved XML and drop a stale checkpoint
 * of a failed run that carries the name we are about to create.  Returns
 * only once the clock is past the creation second of every checkpoint it
 * deleted, so the checkpoint the run creates next is told from them. */
int vb_plan_apply (struct vb_domain *d, struct vb_plan *p);
/* After success: save the new checkpoint's XML (in the target as
 * checkpoints/<name>.xml when CPT_IN_TARGET, else in the -C directory) and
 * store the extended .cpt in the target. */
struct vb_target;
int vb_plan_commit (struct vb_domain *d, const struct vb_backup_opts *o,
                    struct vb_plan *p, struct vb_target *t,
                    bool cpt_in_target);
void vb_plan_free (struct vb_plan *p);
/* Delete a checkpoint and its bitmaps, also of a shut-off domain. */
int vb_plan_delete_checkpoint (struct vb_domain *d, const char *name);

#endif
