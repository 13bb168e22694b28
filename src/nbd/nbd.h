/* SPDX-License-Identifier: GPL-3.0-or-later */
/* nbd.h: the NBD read side of the data path (libnbd).
 *
 * Contract:
 * - vb_nbd_connect() opens one export on a unix socket or over TCP
 *   (nbd://, nbds:// with a client certificate), asking for
 *   base:allocation and, for incremental work, a dirty-bitmap context.
 * - Extents are fetched in windows (vb_extiter) and merged on the fly, so
 *   memory does not grow with disk size or fragmentation.  Each range is
 *   DATA (must be read), ZERO (reads as zeros: unallocated, or a zero
 *   cluster, and for inc/diff a dirty range that now reads as zero,
 *   unless dirty_zero_is_data) or
 *   CLEAN (not dirty since the checkpoint: not part of this backup).
 * - A vb_mapper walks the extents in a thread of its own, ahead of the
 *   copy, so block-status queries overlap the reads.
 * - vb_nbd_copy() reads every DATA range with many asynchronous requests in
 *   flight and hands the bytes to a sink strictly in disk order, so the
 *   sink can write a stream while later reads are still in flight.
 * Errors: -1 with vb_set_error() naming the export and offset.
 * Ownership: struct vb_nbd owns its libnbd handle.
 */
#ifndef VB_NBD_H
#define VB_NBD_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/sink.h"

struct nbd_handle;

#define VB_NBD_MAXCONN 8

struct vb_nbd {
  struct nbd_handle *h;        /* control: block status; also reads */
  struct nbd_handle *rh[VB_NBD_MAXCONN];  /* reads go round-robin; rh[0]==h */
  unsigned nconn;
  char *export;
  char *dirty_ctx;             /* NULL: full; else "qemu:dirty-bitmap:..." */
  /* A dirty range that reads as zero is DATA, not ZERO: virtnbdrestore
   * 1.9 ignores the zero frames of an incremental, so a file it must
   * restore carries such ranges as data (set before mapping). */
  bool dirty_zero_is_data;
  uint64_t size;
  volatile sig_atomic_t *cancel;   /* a connect waiting gives up on it */
};

/* CANCEL (may be NULL), set asynchronously, makes a connect still
 * waiting for its server give up within 100 ms (also the connections
 * vb_nbd_add_connections opens later). */
struct vb_nbd *vb_nbd_connect (const char *socket, const char *export,
                               const char *dirty_ctx,
                               volatile sig_atomic_t *cancel);
/* Connect H (already set up) to SOCKET; -1 with an error if the server
 * fails or does not finish the handshake within the connect timeout
 * (60 s; tests set another). */
int vb_nbd_connect_unix (struct nbd_handle *h, const char *socket,
                         volatile sig_atomic_t *cancel);
void vb_nbd_set_connect_timeout (int ms);
/* SOCKET may also be "nbd://HOST:PORT" or, with TLS,
 * "nbds://HOST:PORT?tls-certificates=DIR": a TCP connection, dropped when
 * it stalls for S seconds (default 60; see vb_nbd_set_io_timeout). */
void vb_nbd_set_io_timeout (int s);
/* A connection that only reads: no extents can be asked on it. */
struct vb_nbd *vb_nbd_connect_reads (const char *socket, const char *export,
                                     volatile sig_atomic_t *cancel);
/* Open NCONN-1 more connections for reads (QEMU serves a bounded number
 * of requests per connection at once; small reads need more). */
int vb_nbd_add_connections (struct vb_nbd *n, const char *socket,
                            unsigned nconn);
/* How many connections to SOCKET a copy opens unless told: one over TLS
 * (nbds://), where QEMU served four connections of 16 reads each at half
 * the speed of one with 64 (bench/README.md, remote), else
 * VB_NBD_DEFAULT_CONN. */
unsigned vb_nbd_default_conns (const char *socket);
void vb_nbd_close (struct vb_nbd *n);

enum vb_ext_type { VB_EXT_DATA, VB_EXT_ZERO, VB_EXT_CLEAN };

struct vb_extent {
  uint64_t off, len;
  enum vb_ext_type type;
};

/* Windowed, merging extent iterator.  WINDOW bytes are asked per
 * block-status request (0: default). */
struct vb_extiter {
  struct vb_nbd *n;
  uint64_t pos;                /* next offset to query */
  uint64_t window;
  struct vb_extent *buf;       /* extents of the current window */
  size_t nbuf, capbuf, ibuf;
  struct vb_extent cur;        /* extent being merged, len 0 if none */
};

void vb_extiter_init (struct vb_extiter *it, struct vb_nbd *n, uint64_t window);
void vb_extiter_free (struct vb_extiter *it);
/* 1 and *E filled, 0 at the end of the disk, -1 on error. */
int vb_extiter_next (struct vb_extiter *it, struct vb_extent *e);

/* Totals of a whole disk, by one pass of the iterator (for dataSize in
 * the stream metadata, -p and progress). */
struct vb_extent_totals {
  uint64_t data_bytes, zero_bytes, clean_bytes;
  uint64_t data_extents, zero_extents;
};
/* The extents of the totals pass, kept for the copy so the server is not
 * asked twice; bounded: past MAX entries it is dropped (overflow) and the
 * copy queries windows again. */
struct vb_extcache {
  struct vb_extent *v;
  size_t n, cap, max;
  bool overflow;
};
void vb_extcache_free (struct vb_extcache *c);

int vb_nbd_totals (struct vb_nbd *n, struct vb_extent_totals *t,
                   struct vb_extcache *cache);
/* Count E into T. */
void vb_extent_totals_add (struct vb_extent_totals *t,
                           const struct vb_extent *e);

/* The extent map run ahead of the copy: a thread walks the disk on N (a
 * connection of its own, owned from here on) and queues up to CAP extents
 * for the copy; CLEAN ranges are counted but not queued.  LIVE_TOTAL, if
 * set, follows the data bytes mapped so far (atomically, for progress).
 * CANCEL set asynchronously stops it with an error. */
struct vb_mapper;
struct vb_map_state {
  uint64_t mapped;             /* the disk is mapped up to here */
  uint64_t size;               /* the disk's size */
  uint64_t data_bytes;         /* DATA bytes in [0, mapped) */
  bool done;                   /* the whole disk is mapped */
};
struct vb_mapper *vb_mapper_start (struct vb_nbd *n, size_t cap,
                                   volatile sig_atomic_t *cancel,
                                   uint64_t *live_total);
/* Write to eventfd FD (-1: none) when an extent or the end is queued. */
void vb_mapper_set_wake (struct vb_mapper *m, int fd);
/* 1 and *E filled, 2 not mapped yet, 0 at the end, -1 the map failed. */
int vb_mapper_next (struct vb_mapper *m, struct vb_extent *e);
/* Wait until the map is done or cannot go on before the copy takes
 * extents, and tell how far it got. */
void vb_mapper_settle (struct vb_mapper *m, struct vb_map_state *st);
/* The data bytes of the whole disk as far as ST lets one guess: exact
 * when the map is done, else the density of the mapped part carried over
 * the rest. */
uint64_t vb_map_estimate (const struct vb_map_state *st);
/* The data bytes of the whole disk, before the copy has taken every
 * extent: when the queue holds the map back, the map counts the rest of
 * the disk in a pass of its own and then goes on queueing where it
 * stopped.  Blocks until known; -1 if the map failed. */
int vb_mapper_count (struct vb_mapper *m, uint64_t *data);
/* The totals of the finished map; -1 if it failed or is not finished. */
int vb_mapper_totals (struct vb_mapper *m, struct vb_extent_totals *t);
/* Stop the map thread and free everything, the connection too. */
void vb_mapper_free (struct vb_mapper *m);

/* The consumer of vb_nbd_copy is a struct vb_sink (common/sink.h). */

/* Measured best on the benchmark VM (bench/README.md): 64 reads of 256 KiB
 * in flight, as nbdcopy does. */
#define VB_NBD_DEFAULT_REQ (256u << 10)
#define VB_NBD_DEFAULT_INFLIGHT 64
#define VB_NBD_DEFAULT_CONN 4

struct vb_copy_opts {
  uint32_t req_size;           /* bytes per NBD read; 0: default */
  unsigned max_inflight;       /* requests in flight; 0: default */
  volatile sig_atomic_t *cancel; /* set asynchronously to stop */
  const struct vb_extcache *cache; /* extents already known, or NULL */
  struct vb_mapper *mapper;    /* or extents from a map running ahead */
};

struct vb_copy_stats {
  uint64_t bytes_read;
  uint64_t data_extents, zero_extents;
  uint64_t requests;
};

int vb_nbd_copy (struct vb_nbd *n, const struct vb_sink *sink,
                 const struct vb_copy_opts *o, struct vb_copy_stats *st);

#endif
