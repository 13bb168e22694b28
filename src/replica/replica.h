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
 *   One sync per session, or, with --interval, one session for the run:
 *   the header announces "idle" (S plus a margin), and after "done" the
 *   receiver folds (holding DIR/lock), releases the lock, and waits that
 *   long for an {"again"} line, on which it takes the lock and sends its
 *   hello again; end of input or the idle time up, it exits, so an idle
 *   receiver never holds DIR/lock and one whose source vanished ends by
 *   itself.  A session found cut is opened again by the next sync.
 * - The standby directory DIR holds <disk>.qcow2 (always the last
 *   completed point: what failover, tests and users open), domain.xml,
 *   and state.json, the journal (journal.c), written atomically: idle,
 *   receiving, applying, failed-over.  A sync writes into
 *   <disk>.sync.qcow2 overlays over the images (a full sync into fresh
 *   <disk>.new.qcow2 images; an overlay has the disk's size, so a disk
 *   grown since the last point grows its image, and one that shrank is
 *   refused) and applies them only after the end of the stream and every
 *   checksum arrived.  "applying" makes each overlay the top of a chain
 *   <disk>.qcow2 -> <disk>.base.qcow2 (qemu-img rebase -u to the relative
 *   name, the image renamed to the base unless the base exists, the
 *   overlay renamed to the image, the directory fsynced) or renames the
 *   new images (removing a stale base); each step is idempotent, so an
 *   interrupted apply is redone, and an interrupted receive discarded, by
 *   the next receive (or `replica apply`).  That apply writes no data
 *   again, so "done" goes to the source right after it: the sync ends
 *   when the standby can boot the new point.
 * - The fold then folds each chain into one image (qemu-img commit -d of
 *   the top into the base, the base renamed over the top, the directory
 *   fsynced) in a detached child of the receiver (own session, stdio on
 *   /dev/null, DIR/lock's fd kept), so ssh ends at once.  The top's view
 *   never changes during a commit (it masks every cluster written into
 *   the base), so a fold may be killed anywhere: a base existing means a
 *   fold pending, which the next receive and `replica apply` finish
 *   before anything else.  DIR/lock (flock) is held by whoever changes
 *   DIR, the fold included.
 * - Failover defines and starts a domain on the images of the last
 *   completed point; it refuses while a sync runs or is being applied.
 *   A running fold it stops (SIGKILL to its session, then it takes the
 *   lock, so no fold renames a file under the domain) and the domain boots
 *   on the chain; failed-over, nothing folds any more (the domain writes
 *   into the top).  Stopping is preferred to waiting: a fold costs what
 *   the sync changed, failover must take seconds whatever that was.
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
/* --interval: one ssh session (and one receiver) for all its syncs. */
struct vb_replica_link;
struct vb_replica_link *vb_replica_link_new (void);
void vb_replica_link_free (struct vb_replica_link *l);

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
  /* Not NULL: the sync runs on this session (opened if it is not, or if
   * it was cut) and leaves it open if it succeeded; the receiver then
   * waits IDLE_S seconds for the next sync before it exits. */
  struct vb_replica_link *link;
  unsigned idle_s;
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
/* Finish an interrupted apply, drop an interrupted receive, then finish
 * a pending fold. */
int vb_replica_apply (const char *dir);

/* ---- standby: what DIR holds ---- */
struct json_object;
/* The journal with "busy" (a run holds DIR/lock) added, and "fold"
 * ("running" or "pending") while a chain is not folded; caller puts it. */
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
