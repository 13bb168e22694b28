/* SPDX-License-Identifier: GPL-3.0-or-later */
/* run.h (private to backup/): the state of one backup run, shared by the
 * files of src/backup: backup.c drives the run, select.c picks the disks
 * and checks the chain, rundir.c owns the private socket/scratch
 * directory. */
#ifndef VB_BACKUP_RUN_H
#define VB_BACKUP_RUN_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>

#include "backup/backup.h"
#include "common/error.h"
#include "backup/chain_plan.h"
#include "backup/disk.h"
#include "nbd/qemu_nbd.h"
#include "remote/remote.h"
#include "target/target.h"
#include "virt/virt.h"

struct sel {                   /* a disk selected for this run */
  struct vb_disk *disk;
  bool raw;                    /* raw-format source: copied whole, raw out */
  struct vb_qemu_nbd server;   /* shut-off domain: our own NBD server */
  struct vb_rnbd rserver;      /* the same on a remote host */
  char *socket;                /* where this disk is served */
  struct vb_image_info *info;  /* its image as selected, or NULL */
  pthread_t asker;             /* facts.c: asking a remote host for it */
  bool asking;
};

struct run {
  struct vb_backup_opts o;     /* with defaults filled in */
  struct vb_domain *d;
  struct vb_plan plan;
  struct vb_target *t;          /* the backup directory (or the zip) */
  struct vb_target *ct;         /* the checkpoint directory; NULL: none */
  struct vb_backup_result *r;
  struct sel *sel;
  size_t nsel;
  char *rundir, *socket, *cptdir_alloc;
  struct vb_rnbd rdir;         /* remote: the session holding rundir */
  char **written;              /* side files put by this run */
  size_t nwritten;
  struct vb_tlock *lock;
  bool offline;                /* shut off: qemu-nbd instead of a job */
  const struct vb_remote *remote;  /* the domain's host, NULL: local */
  char *nbd_addr;              /* the job's TCP export (nbd[s]://...) */
  bool to_stdout;              /* -o -: one zip archive on stdout */
  bool cpt_in_target;          /* checkpoint XML beside the data (no -C) */
  bool frozen, job, checkpoint_made;
  volatile sig_atomic_t stop;  /* set on the first disk failure or signal */
  /* worker pool */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t next, running;
  struct vb_error first_error; /* of the first disk that failed */
  bool failed;
};

/* select.c */
int vb_run_select_disks (struct run *x);
int vb_run_check_chain_disks (struct run *x);
/* -l auto: can the chain in the directory go on?  1 yes, 0 no (the reason
 * in the error: also when it could not tell). */
int vb_run_chain_usable (struct run *x);
/* inc and diff, before anything is written: the domain's checkpoints of
 * the chain are the very ones saved with it (not another backup's of the
 * same name), and every file of the chain that a selected disk's new file
 * depends on is there and whole.  0, or -1 with the reason and the fix. */
int vb_run_check_chain (struct run *x);

/* facts.c: each selected disk's image info (sel.info) and the qcow2 v3
 * check.  vb_run_select_disks starts it (here at once; a remote host's
 * answers come on threads); vb_run_facts_wait has them all and checks
 * them; vb_run_facts_join only waits (for the cleanup). */
int vb_run_facts_start (struct run *x);
int vb_run_facts_wait (struct run *x);
void vb_run_facts_join (struct run *x);

/* rundir.c: for a remote domain the directory is made on its host, by a
 * session that must be started (vb_run_start_rundir, once the domain has
 * its remote and before it connects) and given QEMU's group once the XML
 * is read (vb_run_group_rundir: a shut-off domain's session ends) before
 * vb_run_make_rundir waits for it. */
int vb_run_start_rundir (struct run *x);
int vb_run_group_rundir (struct run *x);
int vb_run_make_rundir (struct run *x);
void vb_run_remove_rundir (struct run *x);
/* Remove the private directory of a killed run, given its socket path. */
void vb_run_remove_stale_dir (const struct vb_remote *r, const char *sock);
/* Remove private directories under BASE whose run is dead (kill -9). */
void vb_run_reap_stale (const char *base);

#endif
