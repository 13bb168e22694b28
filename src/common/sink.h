/* SPDX-License-Identifier: GPL-3.0-or-later */
/* sink.h: the seam between what produces a disk's bytes in disk order
 * (the NBD copy engine) and what stores them: the stream writer
 * (stream/writer.h), a raw image, and later a chunk store.
 *
 * Contract: the producer calls the sink from one thread, in disk order.
 * begin_data/end_data bracket one DATA extent, whose bytes arrive through
 * data() in order, in pieces of at most the producer's request size that
 * never cross a multiple of it from the extent start.  zero() reports a
 * range that reads as zeros.  Any callback returning -1 (with an error)
 * stops the producer.
 */
#ifndef VB_COMMON_SINK_H
#define VB_COMMON_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct vb_piece {
  const void *in;
  size_t len;
  bool chain_first, chain_last;
  uint64_t chain_len;
};

struct vb_sink {
  int (*begin_data) (void *op, uint64_t off, uint64_t len);
  /* BUF[LEN] is the piece (or its transform); ORIG_LEN its disk bytes. */
  int (*data) (void *op, const void *buf, size_t len, size_t orig_len);
  int (*end_data) (void *op);
  int (*zero) (void *op, uint64_t off, uint64_t len);
  /* Optional: a pool of WORKERS threads transforms each DATA piece (e.g.
   * compresses it) into OUT of TRANSFORM_CAP bytes; data() then gets the
   * result, still in disk order.  WORKER is 0..WORKERS-1, so each worker
   * keeps its own context.  Without CHAIN_SIZE pieces are independent and
   * transformed in any order.  With it, the pieces of each CHAIN_SIZE span
   * of an extent form a chain (one compressed frame) that one worker
   * transforms in order, FIRST and LAST marking its ends and CHAIN_LEN its
   * length; chains go round-robin to the workers.  Returns bytes or -1. */
  ssize_t (*transform) (void *op, unsigned worker, const struct vb_piece *p,
                        void *out, size_t outcap);
  size_t transform_cap;
  unsigned workers;
  uint64_t chain_size;         /* 0: independent pieces */
  void *op;
};

#endif
