/* SPDX-License-Identifier: GPL-3.0-or-later */
/* report.h: the JSON report of a run, and the backup child's summary it
 * is made from.
 *
 * Contract: the report (json-c, never printf) is one object: "config",
 * "started" and "finished" (UTC, ISO 8601), "success", "failed" (the
 * domains or patterns that failed, in order) and "domains": per domain
 * "domain", "job", "status" (ok, failed, missing), "level", "bytes",
 * "seconds", "startedAfter" (seconds after the run began), "chain",
 * "checkpoint", "pruned" and "error" (null when there
 * is none).  vb_run_report_write() replaces the file atomically, mode
 * 0600.  vb_run_take_summary() reads what `virtback backup --json` printed
 * (level, checkpoint, output, the disks' bytesWritten).  Errors: -1/NULL
 * with vb_set_error().  Never prints.
 */
#ifndef VB_RUN_REPORT_H
#define VB_RUN_REPORT_H

#include <stddef.h>
#include <time.h>

#include "run/result.h"

struct json_object;

/* Fill R's level, bytes and checkpoint from the child's JSON TEXT. */
int vb_run_take_summary (const char *text, struct vb_run_result *r);
/* The report of N results (the caller puts it). */
struct json_object *vb_run_report (const char *config, time_t started,
                                   time_t finished,
                                   const struct vb_run_result *res, size_t n);
int vb_run_report_write (const char *path, struct json_object *report);

#endif
