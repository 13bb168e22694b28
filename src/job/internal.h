/* SPDX-License-Identifier: GPL-3.0-or-later */
/* internal.h (private to job/): the job record, the job chain file, the
 * control-socket client and the checkpoint decisions, shared by the
 * files of src/job.  Records and chains are json-c objects: what is on
 * disk is what the code holds. */
#ifndef VB_JOB_INTERNAL_H
#define VB_JOB_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "job/job.h"
#include "virt/virt.h"

/* ---- record.c ---- */
/* Where records and chains live; NULL resets a default.  For the unit
 * tests. */
void vb_job_set_dirs (const char *run, const char *chain);
const char *vb_job_run_dir (void);
/* The string member KEY of O, or NULL. */
const char *vb_jstr (struct json_object *o, const char *key);
long long vb_jint (struct json_object *o, const char *key);
/* IDs are lower-case hex: nothing else reaches a path. */
bool vb_job_valid_id (const char *id);
/* NBYTES random bytes as lower-case hex (malloc'd), from libsodium. */
char *vb_job_random_hex (size_t nbytes);
/* Write record REC (its "id") to VB_JOB_RUN_DIR/<id>.json, atomically. */
int vb_jrec_save (struct json_object *rec);
/* The record of job ID; NULL with "no job ID" when there is none. */
struct json_object *vb_jrec_load (const char *id);
int vb_jrec_remove (const char *id);
/* IDs of every record, NULL-terminated (vb_strv_free). */
char **vb_jrec_ids (void);
/* The domain's job chain of PREFIX: an array of {"name","xml"}, oldest
 * first; an empty array when there is none. */
struct json_object *vb_jchain_load (const char *uuid, const char *prefix);
int vb_jchain_save (const char *uuid, const char *prefix,
                    struct json_object *chain);

/* ---- control.c ---- */
/* PUT ticket ID with BODY on virtback serve's control socket SOCK. */
int vb_jctl_put (const char *sock, const char *id, const char *body);
/* DELETE ticket ID (0 also when it is gone, or serve is not running:
 * then it has no tickets). */
int vb_jctl_delete (const char *sock, const char *id);
/* Ticket ID as serve's GET shows it (with its "expires"), or NULL. */
struct json_object *vb_jctl_get (const char *sock, const char *id);
/* Is serve answering on SOCK?  0, or -1 with the fix. */
int vb_jctl_probe (const char *sock);

/* ---- chain.c ---- */
struct vb_jplan {
  char *checkpoint;            /* to create */
  char *parent;                /* inc: to start from */
};
/* Decide and prepare the checkpoints of a job on D (deleting the prefix's
 * checkpoints for a full).  0, or -1 with the reason and the fix. */
int vb_jplan_make (struct vb_domain *d, const struct vb_job_opts *o,
                   const char *prefix, struct vb_jplan *p);
void vb_jplan_free (struct vb_jplan *p);
/* Add checkpoint CP (child of PARENT, NULL for a full) to the job chain. */
int vb_jchain_record (struct vb_domain *d, const char *prefix,
                      const char *cp, const char *parent);
/* Delete checkpoint NAME of D (and its bitmaps; only the metadata if
 * libvirt cannot find the bitmaps any more). */
int vb_jcheckpoint_delete (struct vb_domain *d, const char *name);

#endif
