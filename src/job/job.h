/* SPDX-License-Identifier: GPL-3.0-or-later */
/* job.h: pull-backup jobs for other tools (virtback job): oVirt's backup
 * flow on a plain libvirt host.
 *
 * Contract: vb_job_start() begins a libvirt pull-mode backup job with a
 * new checkpoint (full or inc, named "<prefix>.<N>" as virtback backup
 * names them), its NBD export on a unix socket in a private directory
 * (0770, root and QEMU's group), and adds one ticket per disk to a local
 * virtback serve over its control socket (random 128-bit ticket IDs; an
 * inc's tickets are dirty tickets).  The job's record is a JSON file
 * <VB_JOB_RUN_DIR>/<id>.json (0600, written atomically), so finish and
 * list work from any process.  A start that fails leaves nothing: no
 * libvirt job, checkpoint, ticket, socket, scratch file or record.
 *
 * vb_job_finish() ends the libvirt job, deletes the tickets and the
 * private directory, and records the checkpoint in the domain's job
 * chain (<VB_JOB_CHAIN_DIR>/<uuid>.<prefix>.json: the checkpoint XML of
 * each point, as a backup directory keeps its .cpt and checkpoints/), so
 * the next inc job starts from it.  A job past its timeout, or a start
 * killed halfway, is ended by the next start or list (vb_job_reap) as a
 * failed backup is: its checkpoint is deleted and not recorded.  A
 * client that extends the job's tickets on serve (PATCH /tickets/ID)
 * extends the job with them: it ends only once its last ticket has.
 *
 * Chains: the domain's checkpoints of one prefix form one libvirt tree
 * that backup directories and the job chain share; each keeps its own
 * record of the points it holds.  An inc goes on from its own chain's
 * newest point (libvirt merges the bitmaps of the checkpoints after it),
 * so a backup after jobs and a job after backups both see every change.
 * A full, job or backup, deletes the prefix's checkpoints: every other
 * chain of the domain must start anew, and says so when it tries.
 *
 * Never prints; errors are vb_set_error() with the fix in the message.
 */
#ifndef VB_JOB_H
#define VB_JOB_H

#include <signal.h>
#include <stdbool.h>

#define VB_JOB_RUN_DIR "/run/virtback/jobs"
#define VB_JOB_CHAIN_DIR "/var/lib/virtback/jobs"
#define VB_JOB_BASE_URL "http://localhost:54322"
#define VB_JOB_TIMEOUT 3600

struct vb_job_opts {
  const char *uri;             /* NULL: qemu:///system */
  const char *domain;
  bool inc;                    /* false: full */
  const char *from;            /* inc: start here, not the chain's newest */
  const char *prefix;          /* NULL: "virtback" */
  const char *control_socket;  /* NULL: serve's default */
  const char *base_url;        /* transfer URLs; NULL: VB_JOB_BASE_URL */
  const char *scratchdir;      /* NULL: /var/tmp */
  int timeout;                 /* seconds; 0: VB_JOB_TIMEOUT */
  bool no_freeze;
  /* Set from a signal handler: the start gives up at its next step and
   * cleans up as any failed start does. */
  volatile sig_atomic_t *cancel;
};

/* Start a job; *JSON receives {id, checkpoint, parent, disks: {sda:
 * {transfer_url, size}}} (malloc'd).  0 or -1. */
int vb_job_start (const struct vb_job_opts *o, char **json);
/* End job ID and record its checkpoint.  0 or -1. */
int vb_job_finish (const char *id);
/* End every job past its timeout and its tickets' end, and every start
 * that died halfway (its record not "running" while nobody holds the
 * domain's lock).  Returns how many it ended, or -1 when the records
 * cannot be read; a job it could not end stays for the next reap, with a
 * warning through vb_log(). */
int vb_job_reap (void);
/* The running jobs (after a reap) as a JSON array of their records. */
char *vb_job_list (void);

#endif
