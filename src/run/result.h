/* SPDX-License-Identifier: GPL-3.0-or-later */
/* result.h: what a run did for one domain, as the report, the metrics
 * and the terminal show it.  Filled by the runner (runner.h) from the
 * backup child's JSON summary and exit status. */
#ifndef VB_RUN_RESULT_H
#define VB_RUN_RESULT_H

#include <stdint.h>
#include <time.h>

enum vb_run_status {
  VB_RUN_OK,
  VB_RUN_FAILED,               /* the backup (or the prune after it) failed */
  VB_RUN_MISSING,              /* a name or glob that matched no domain */
};

struct vb_run_result {
  char *domain;                /* the domain, or the pattern that matched none */
  char *job;
  enum vb_run_status status;
  char *level;                 /* what the backup did: full, inc, ... */
  uint64_t bytes;              /* bytes it wrote */
  double seconds;
  double started_after;        /* seconds after the run began */
  char *chain;                 /* the chain directory it wrote */
  char *checkpoint;            /* the checkpoint it made, or NULL */
  char *error;                 /* one line, or NULL */
  char **pruned;               /* chain directories removed after it */
  time_t finished;             /* wall-clock end, for the metrics */
};

void vb_run_result_clear (struct vb_run_result *r);
const char *vb_run_status_name (enum vb_run_status s);

#endif
