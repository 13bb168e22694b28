/* SPDX-License-Identifier: GPL-3.0-or-later */
/* internal.h (private to src/replica): the wire both ends speak, and the
 * standby directory's journal and lock. */
#ifndef VB_REPLICA_INTERNAL_H
#define VB_REPLICA_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "stream/stream.h"

/* ---- wire.c ----
 * Both fds are made non-blocking; every wait polls CANCEL every 100 ms
 * and gives up after TIMEOUT_MS without progress (0: never), so a cut
 * link ends a sync instead of hanging on TCP's retries. */
struct vb_wire {
  int in, out;
  char *buf;                   /* read buffer */
  size_t pos, len, cap;
  int timeout_ms;
  volatile sig_atomic_t *cancel;
  const char *peer;            /* "the standby", "the source": messages */
};
int vb_wire_init (struct vb_wire *w, int in, int out, const char *peer);
void vb_wire_free (struct vb_wire *w);
int vb_wire_write (struct vb_wire *w, const void *buf, size_t len);
/* Exactly LEN bytes. */
int vb_wire_read (struct vb_wire *w, void *buf, size_t len);
/* One JSON object per line. */
int vb_wire_send_json (struct vb_wire *w, struct json_object *o);
/* The next line as a JSON object; an {"error": MSG} line becomes the error
 * "PEER: MSG".  Caller puts it. */
struct json_object *vb_wire_recv_json (struct vb_wire *w);
int vb_wire_send_frame (struct vb_wire *w, enum vb_frame_kind kind,
                        uint64_t start, uint64_t len);
int vb_wire_recv_frame (struct vb_wire *w, enum vb_frame_kind *kind,
                        uint64_t *start, uint64_t *len);

/* Small json-c helpers: string member or NULL, integer member or DFLT. */
const char *vb_json_str (struct json_object *o, const char *key);
int64_t vb_json_int (struct json_object *o, const char *key, int64_t dflt);

/* A debug note "phase NAME +S" (seconds since the process's first
 * phase): where a sync's time goes, for VIRTBACK_DEBUG=1. */
void vb_phase (const char *name);

/* ---- journal.c ---- */
#define VB_REPLICA_STATE "state.json"
/* DIR/state.json, or an empty idle journal when there is none. */
struct json_object *vb_journal_read (const char *dir);
int vb_journal_write (const char *dir, struct json_object *j);
/* "idle", "receiving", "applying", "failed-over". */
const char *vb_journal_state (struct json_object *j);
/* Take DIR/lock, waiting up to WAIT_S seconds for its holder; the fd,
 * which children inherit (a commit keeps DIR locked until it ends). */
int vb_journal_lock (const char *dir, int wait_s);
/* 1 if a process holds DIR/lock, 0 if not, -1 error. */
int vb_journal_locked (const char *dir);
/* The images a sync writes and the image of a disk (malloc'd). */
char *vb_replica_image (const char *dir, const char *disk,
                        const char *kind);
/* The next step of an incremental's apply on one disk, from which of
 * <disk>.sync.qcow2, <disk>.base.qcow2 and <disk>.qcow2 exist (pure):
 * DONE, rename the top to the base, rename the overlay to the top, or BAD
 * (files that no apply leaves). */
enum vb_apply_step { VB_APPLY_DONE, VB_APPLY_BASE, VB_APPLY_TOP, VB_APPLY_BAD };
enum vb_apply_step vb_apply_next (bool sync, bool base, bool top);
/* Redo an interrupted apply, discard an interrupted receive; the lock is
 * held.  0 or -1.  It leaves a pending fold pending. */
int vb_journal_recover (const char *dir, struct json_object *j);
/* Apply the pending sync of J (state must be "applying"), then idle. */
int vb_journal_apply (const char *dir, struct json_object *j);
/* How many disks of the completed point are a two-image chain still
 * (their <disk>.base.qcow2 exists: a fold pending), or -1. */
int vb_journal_fold_pending (const char *dir, struct json_object *j);
/* Fold each chain into one image (qemu-img commit of the top into the
 * base, then the base renamed over the top); the lock is held.  Only in
 * state idle: after a failover it does nothing.  The journal's "folding"
 * holds the folding pid meanwhile. */
int vb_journal_fold (const char *dir, struct json_object *j);

#endif
