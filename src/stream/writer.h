/* SPDX-License-Identifier: GPL-3.0-or-later */
/* writer.h: one data file in the stream format, through a target file.
 *
 * Contract: the writer owns every byte of the format: the meta frame, data
 * and zero frames, compressed pieces (lz4 in chains of VB_STREAM_MAX_PIECE
 * as the peer, zstd one frame per piece), the stop frame, the compression
 * trailer, and the adler32 of the whole file for its .chksum.  It is a
 * struct vb_sink (common/sink.h): a producer feeds it in disk order, and
 * its transforms compress pieces on the producer's worker threads.
 *
 * The meta frame holds dataSize.  When the caller knows it up front
 * (GUESS NULL) the header is written first.  Else, on a target that can
 * reserve and shift, it is written last: when the first frame is ready,
 * room is kept sized by GUESS (the caller's estimate of dataSize); at
 * vb_swriter_finish the true header goes into it, and if it came out
 * longer or shorter the body is moved to fit (a note is logged).  The file
 * is always the one a header-first run writes.
 *
 * Ownership: the writer borrows the tfile and the metadata strings; the
 * caller commits or aborts the tfile.  Errors: -1 with vb_set_error(); the
 * tfile's errors are sticky.
 */
#ifndef VB_STREAM_WRITER_H
#define VB_STREAM_WRITER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/sink.h"
#include "stream/stream.h"

struct vb_tfile;
struct vb_swriter;

struct vb_swriter_opts {
  struct vb_meta meta;         /* all but dataSize when GUESS is set */
  bool compress, zstd;
  int level;
  unsigned workers;            /* compression threads the producer runs */
  size_t req_size;             /* the producer's largest piece */
  /* Header last: an estimate of dataSize when the first frame is ready. */
  int (*guess) (void *op, uint64_t *data_size);
  void *guess_op;
  uint64_t *progress;          /* disk bytes taken, added atomically */
  volatile sig_atomic_t *cancel;   /* stops a move of the body */
  const char *what;            /* for notes: the disk */
};

struct vb_swriter *vb_swriter_new (struct vb_tfile *f,
                                   const struct vb_swriter_opts *o);
void vb_swriter_free (struct vb_swriter *w);
/* The writer as a sink (its op is W). */
void vb_swriter_sink (struct vb_swriter *w, struct vb_sink *sink);
/* The stop frame, the trailer, and (header last) the header for
 * DATA_SIZE. */
int vb_swriter_finish (struct vb_swriter *w, uint64_t data_size);
uint32_t vb_swriter_adler (const struct vb_swriter *w);
uint64_t vb_swriter_written (const struct vb_swriter *w);

/* Synchronous use, without a producer (tools, tests): one whole frame. */
int vb_swriter_data (struct vb_swriter *w, uint64_t off, const void *buf,
                     size_t len);
int vb_swriter_zero (struct vb_swriter *w, uint64_t off, uint64_t len);

#endif
