/* SPDX-License-Identifier: GPL-3.0-or-later */
/* replica.h: a standby copy of a running domain on another host, kept
 * current by changed-block tracking: `virtback replicate` (the source),
 * `virtback replica receive|status|apply` and `virtback failover` (the
 * standby host).
 *
 * Contract:
 * - A sync is one pull-mode backup job of its own checkpoint chain
 *   (prefix "virtback-replica"), so `virtback backup` chains live beside
 *   it.  The source always starts from the checkpoint of the last sync
 *   the standby reports as completed (a full sync when the domain has no
 *   such checkpoint; a job started from a guess while ssh connects is
 *   replaced when the standby names another point), and only after a completed sync removes the
 *   checkpoints of its chain no longer needed.  A failed sync loses
 *   nothing: the next one starts from the same completed point.
 * - The wire (wire.c) is the receiver's stdin and stdout, run through
 *   ssh: JSON lines (json-c) for control, the stream format's 40-byte
 *   frame headers (stream/stream.h) for the data, a CRC-32 per disk.
 * - The standby directory DIR holds <disk>.qcow2 (the last completed
 *   point), domain.xml, and state.json, the journal (journal.c), written
 *   atomically: idle, receiving, applying, failed-over.  A sync writes
 *   into <disk>.sync.qcow2 overlays over the images (a full sync into
 *   fresh <disk>.new.qcow2 images; an overlay has the disk's size, so a
 *   disk grown since the last point grows its image, and one that shrank
 *   is refused) and applies them only after the end of
 *   the stream and every checksum arrived: "applying" commits the overlays
 *   (qemu-img commit) or renames the new images, which is idempotent, so
 *   an interrupted apply is redone, and an interrupted receive discarded,
 *   by the next receive (or `replica apply`).  DIR/lock (flock) is held by
 *   whoever changes DIR.
 * - Failover defines and starts a domain on the images of the last
 *   completed point; it refuses while a sync runs or is being applied.
 * Errors: -1 / NULL with vb_set_error(); nothing here prints (the
 * receiver's answers go on the wire, the CLI prints the rest).
 */
#ifndef VB_REPLICA_H
#define VB_REPLICA_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#define VB_REPLICA_PREFIX "virtback-replica"

/* ---- source: one sync ---- */
struct vb_replicate_opts {
  const char *uri;             /* NULL: qemu:///system */
  const char *domain;
  const char *to;              /* ssh://[user@]HOST[:PORT]/DIR */
  const char *rsh;             /* ssh command, NULL: "ssh" */
  const char *remote;          /* virtback on the standby, NULL: "virtback" */
  const char *scratchdir;      /* NULL: /var/tmp */
  bool kill_stale;             /* -k: end a backup job of virtback's */
  bool no_freeze;
  volatile sig_atomic_t *cancel;
};

struct vb_replicate_result {
  char *point, *parent;        /* parent NULL: a full sync */
  uint64_t bytes;              /* disk data sent */
  unsigned ndisks;
  double seconds;              /* the whole sync */
  double lag;                  /* from the point's moment to its commit */
  long long point_time;        /* epoch seconds of the job start */
};

int vb_replicate (const struct vb_replicate_opts *o,
                  struct vb_replicate_result *r);
void vb_replicate_result_free (struct vb_replicate_result *r);

/* Split ssh://[user@]HOST[:PORT]/DIR (libcurl's URL parser); DIR keeps
 * its leading '/'; *USER and *PORT NULL when not given.  DIR must be made
 * of letters, digits and "/._-" only: it goes through the remote shell. */
int vb_replica_parse_to (const char *to, char **user, char **host,
                         char **port, char **dir);

/* ---- standby: the receiving end (stdin IN, stdout OUT) ---- */
int vb_replica_receive (const char *dir, int in, int out, int timeout_s,
                        volatile sig_atomic_t *cancel);
/* Finish an interrupted apply, drop an interrupted receive. */
int vb_replica_apply (const char *dir);

/* ---- standby: what DIR holds ---- */
struct json_object;
/* The journal with "busy" (a run holds DIR/lock) and "pid" added;
 * caller puts it. */
struct json_object *vb_replica_status (const char *dir);
/* The status as lines of text (malloc'd). */
char *vb_replica_status_text (struct json_object *st, const char *dir);

/* ---- standby: failover ---- */
struct vb_failover_opts {
  const char *dir;
  const char *name;            /* NULL: the source domain's name */
  const char *uri;
};
/* Define and start the standby domain; its name (malloc'd). */
char *vb_failover (const struct vb_failover_opts *o);

#endif
