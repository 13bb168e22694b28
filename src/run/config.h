/* SPDX-License-Identifier: GPL-3.0-or-later */
/* config.h: the configuration of `virtback run`, an INI file read by
 * libinih (never by hand).
 *
 * Contract: vb_run_config_load() reads the whole file and checks every
 * key and value; on the first problem it fails with one message that
 * names the file, the line and the key ("/etc/virtback/virtback.conf:7:
 * [job:nightly] unknown key 'domain'"), so the CLI prints it as it is.
 * A loaded config is complete: every job has domains, an output (its own
 * or the global one), and all paths are absolute.  Sections are [global]
 * and [job:NAME]; the keys are documented in virtback-run(1).  Also here:
 * the parsers of the value types (intervals, booleans), for the unit
 * tests and for `virtback prune`.  Never prints.
 */
#ifndef VB_RUN_CONFIG_H
#define VB_RUN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a job does to a domain on each run. */
enum vb_run_level {
  VB_RUN_AUTO,                 /* continue the current chain, start a new one
                                * when it is older than full-interval */
  VB_RUN_FULL,                 /* a new chain each run */
  VB_RUN_INC,                  /* an incremental into the current chain */
  VB_RUN_DIFF,                 /* a differential into the current chain */
  VB_RUN_COPY,                 /* a copy (no checkpoint), a new directory */
};

struct vb_run_job {
  char *name;                  /* NAME of [job:NAME] */
  int line;                    /* the line of its first key */
  char **domains;              /* names or fnmatch globs, NULL-terminated */
  char **exclude;              /* globs taken out again */
  enum vb_run_level level;
  uint64_t full_interval;      /* seconds; 0: never by age */
  unsigned keep_chains;        /* chains kept per domain; 0: all */
  char *compress;              /* NULL, "lz4" or "zstd" */
  char *output;                /* OUTPUT of this job (own or global) */
  char *uri;                   /* libvirt URI (own, global, or NULL) */
  char *scratchdir;            /* backup -S (own, global, or NULL) */
  bool freeze;                 /* freeze guest filesystems (default yes) */
  uint64_t timeout;            /* seconds a domain may take; 0: no limit */
  char **exclude_disks;        /* backup -x */
  char **include_disks;        /* backup -i */
};

struct vb_run_config {
  char *path;
  char *output;
  unsigned parallel;
  char *report;                /* NULL: none */
  char *metrics;               /* NULL: none */
  char *uri;
  char *scratchdir;
  struct vb_run_job *jobs;
  size_t njobs;
};

/* Load PATH into *CFG (zeroed first); free it with vb_run_config_free
 * also on failure. */
int vb_run_config_load (const char *path, struct vb_run_config *cfg);
void vb_run_config_free (struct vb_run_config *cfg);
/* The job named NAME, or NULL. */
const struct vb_run_job *vb_run_config_job (const struct vb_run_config *cfg,
                                            const char *name);

/* "90s", "30m", "12h", "7d", "2w" (a number and one unit) into seconds;
 * 0 and "0s" are refused (leave the key out for no interval). */
int vb_run_parse_interval (const char *s, uint64_t *secs);
/* yes/no, true/false, on/off, 1/0. */
int vb_run_parse_bool (const char *s, bool *out);
int vb_run_parse_level (const char *s, enum vb_run_level *out);
const char *vb_run_level_name (enum vb_run_level l);

/* NULL-terminated string vectors as the run uses them. */
int vb_run_strv_push (char ***v, const char *s);
size_t vb_run_strv_len (char *const *v);
void vb_run_strv_free (char **v);

#endif
