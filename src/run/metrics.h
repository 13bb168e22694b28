/* SPDX-License-Identifier: GPL-3.0-or-later */
/* metrics.h: the run's metrics in Prometheus's text exposition format,
 * for node_exporter's textfile collector.
 *
 * Contract: per domain, with a label domain="NAME" (escaped as the format
 * says: backslash, double quote, newline), each family with its HELP and
 * TYPE lines: virtback_last_success_timestamp_seconds (left out for a
 * domain that never succeeded), virtback_last_run_success (1 or 0),
 * virtback_last_backup_bytes (of the last backup that was made) and
 * virtback_last_duration_seconds (of the last attempt).  A run updates the
 * domains it ran and keeps the others' lines, and a domain that failed
 * keeps its last success time and bytes: vb_metrics_load() reads them back
 * from the file this unit wrote before (its own sample lines, not any
 * Prometheus text).  The file is replaced atomically, mode 0644: the
 * collector runs as a user of its own, and the numbers are no secret.
 * Errors: -1/NULL with vb_set_error().  Never prints.
 */
#ifndef VB_RUN_METRICS_H
#define VB_RUN_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "run/result.h"

struct vb_metric {
  char *domain;
  bool has_success;
  double last_success;         /* Unix seconds */
  int last_run_success;
  uint64_t bytes;
  double duration;
};

struct vb_metrics {
  struct vb_metric *v;
  size_t n;
};

/* The samples of PATH (a missing file: none) into *M (zeroed first). */
int vb_metrics_load (const char *path, struct vb_metrics *m);
/* Parse TEXT as vb_metrics_load does. */
int vb_metrics_parse (const char *text, struct vb_metrics *m);
/* Take in what R says about its domain. */
int vb_metrics_update (struct vb_metrics *m, const struct vb_run_result *r);
/* The text of M, domains sorted by name (malloc'd). */
char *vb_metrics_format (const struct vb_metrics *m);
/* Write M to PATH atomically (its directory is made if missing). */
int vb_metrics_write (const char *path, const struct vb_metrics *m);
void vb_metrics_free (struct vb_metrics *m);

#endif
