/* SPDX-License-Identifier: GPL-3.0-or-later */
/* runner.h: backing up the domains of a run, PARALLEL at once, each in a
 * child process of its own.
 *
 * Contract: each task runs `virtback backup -l LEVEL --json` (this very
 * binary, /proc/self/exe) into its chain directory, so that a crash or a
 * hang of one domain's backup cannot take the others down; the result
 * comes from the child's JSON summary and exit status, its error from the
 * last line it printed on stderr (both kept in memory files: nothing is
 * written beside the backups).  While a domain runs, its directory
 * OUTPUT/DOMAIN is locked (chains.h); after a backup that succeeded, the
 * job's keep-chains prunes it.  A new chain directory of a backup that
 * failed is removed again.  When CANCEL is set (a signal), or a domain
 * exceeds its job's timeout, its child gets SIGTERM (the backup ends
 * through its own cleanup) and SIGKILL 30 s later; domains not started yet
 * fail as interrupted; every child is reaped before vb_run_tasks returns.
 * Children die with the run (PR_SET_PDEATHSIG), also after kill -9.
 */
#ifndef VB_RUN_RUNNER_H
#define VB_RUN_RUNNER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "run/chains.h"
#include "run/config.h"
#include "run/result.h"

/* Where a domain's backup goes this time. */
struct vb_run_plan {
  bool new_chain;              /* a new chain directory starts */
  char chain[VB_CHAIN_NAME_LEN];
  const char *level;           /* backup -l: full, auto, inc, diff, copy */
};

/* Decide for a job of LEVEL with FULL_INTERVAL, given the chain names
 * (oldest first) and the time NOW. */
int vb_run_decide (enum vb_run_level level, uint64_t full_interval,
                   char *const *chains, time_t now, struct vb_run_plan *p);

struct vb_run_task {
  const struct vb_run_job *job;
  char *domain;
  char *domdir;                /* OUTPUT/DOMAIN */
  struct vb_run_plan plan;
  struct vb_run_result res;
  /* while it runs */
  pid_t pid;
  int out_fd, err_fd, lock_fd;
  double start, term_at;
  bool timed_out;
  bool child_ok;               /* the backup exited 0: its chain stays */
  bool started;
};

/* A task for DOMAIN of JOB (its result named too). */
int vb_run_task_init (struct vb_run_task *t, const struct vb_run_job *job,
                      const char *domain);
void vb_run_task_clear (struct vb_run_task *t);

/* What a run would do to T now: its plan and the chains it would prune
 * (*PRUNE), read without the lock and changing nothing. */
int vb_run_dry (struct vb_run_task *t, time_t now, char ***prune);

/* Run the N tasks; DONE (may be NULL) is called as each one ends. */
typedef void (*vb_run_done_fn) (const struct vb_run_task *t, void *op);
void vb_run_tasks (struct vb_run_task *tasks, size_t n, unsigned parallel,
                   volatile sig_atomic_t *cancel, vb_run_done_fn done,
                   void *op);

#endif
