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
  struct vb_target *cpt;       /* where saved checkpoint XML is read */
};

/* Everything the decision depends on. */
struct vb_plan_in {
  enum vb_level level;         /* as asked; VB_LEVEL_AUTO is resolved */
  const char *prefix;          /* checkpoint prefix, NULL: "virtback" */
  bool print_only;             /* -p: full and copy need no empty directory */
  const char *domain;          /* the domain's name, for messages */
  const char *outdir;          /* the backup directory, for messages */
  char *const *checkpoints;    /* the domain's, as libvirt lists them */
  /* Those of CHECKPOINTS a pull job's chain holds (virtback job): a new
   * checkpoint skips their names; any other of the prefix that no chain
   * lists is a failed run's leftover, whose name is taken again. */
  char *const *taken;
  /* What the directory says.  has_backup: it holds data files or a .cpt.
   * only_leftovers: it holds nothing but what a run that did not complete
   * leaves (not looked at when has_backup).  chain: the .cpt list, empty
   * when there is none.  -1 (NULL for chain): it could not be read, and
   * the reason is this thread's error, which the decision keeps when it
   * needs that input; a refusal the decision comes to first (foreign
   * checkpoints, a directory that is not empty) is reported instead. */
  int has_backup;
  int only_leftovers;
  char *const *chain;
  long long now;               /* seconds since the epoch: a diff's ident */
};

/* The decision, a pure function of IN: it reads no libvirt, file or clock.
 * Fills P (chain a copy of IN's; cpt left NULL).  0, or -1 with the
 * error; on either, P is for vb_plan_free. */
int vb_plan_decide (const struct vb_plan_in *in, struct vb_plan *p);
/* Gather IN (libvirt's checkpoints of D; T's listing and .cpt, in that
 * order, stopping at the first that cannot be read, T empty when it cannot
 * be read back; the clock) and decide; P->cpt is CPT. */
struct vb_target;
int vb_plan_make (struct vb_domain *d, const struct vb_backup_opts *o,
                  struct vb_target *t, struct vb_target *cpt,
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
int vb_plan_commit (struct vb_domain *d, const struct vb_backup_opts *o,
                    struct vb_plan *p, struct vb_target *t,
                    bool cpt_in_target);
void vb_plan_free (struct vb_plan *p);
/* Delete a checkpoint and its bitmaps, also of a shut-off domain. */
int vb_plan_delete_checkpoint (struct vb_domain *d, const char *name);

#endif
