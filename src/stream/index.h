/* SPDX-License-Identifier: GPL-3.0-or-later */
/* index.h: a compact table of one data file's frames, for random access.
 *
 * Contract: vb_index_build() makes one pass over the file's frame headers
 * with the stream reader, so the index holds only what the reader
 * validated (syntax, CR LF, ascending disjoint ranges inside the virtual
 * size, dataSize, the compression trailer).  No payload is read: of a
 * compressed frame only each piece's own frame header, for its content
 * size, and the pieces' file offsets come from the trailer's sizes.  The
 * content of a piece is trusted only once it decompresses to exactly its
 * length (the caller's job; vb_index_piece_read does it).
 *
 * Size: 24 bytes per frame and 24 per compressed piece, so a frame of one
 * piece costs 48; arrays are trimmed to fit when the pass ends.
 *
 * Ownership: the index owns its arrays and metadata, not the read handle.  It is
 * read-only after the build, so any number of threads may use it.
 */
#ifndef VB_STREAM_INDEX_H
#define VB_STREAM_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream/stream.h"

#define VB_INDEX_ZERO UINT64_MAX

struct vb_index_frame {
  uint64_t start, length;      /* the disk range */
  /* VB_INDEX_ZERO for a zero frame; else the payload's file offset
   * (plain) or the index of the frame's first piece (compressed). */
  uint64_t where;
};

struct vb_index_piece {
  uint64_t file_offset;        /* where its compressed bytes start */
  uint64_t disk_offset;        /* the disk byte its content starts at */
  uint32_t csize;              /* compressed bytes */
  uint32_t length;             /* content bytes (1 to VB_STREAM_MAX_PIECE) */
};

struct vb_index {
  struct vb_meta meta;
  bool compressed;
  enum vb_comp_method method;  /* when compressed */
  struct vb_index_frame *frames;   /* in disk order */
  size_t nframes;
  struct vb_index_piece *pieces;   /* in disk (and file) order */
  size_t npieces;
  uint32_t max_csize;          /* largest piece, compressed */
};

/* Index the data file read through RF (NAME for messages).  NULL with an error
 * that names the file and offset when it is damaged. */
struct vb_index *vb_index_build (struct vb_rfile *rf, const char *name);
/* A raw image of SIZE bytes read through RF, as an index: its extents
 * (vb_rfile_next_data; all of it where the backend cannot tell) as
 * plain data frames, its holes and anything past its end as gaps. */
struct vb_index *vb_index_raw (struct vb_rfile *rf, const char *name,
                               uint64_t size);
void vb_index_free (struct vb_index *ix);

/* The first frame that ends after OFF (the one holding OFF, or the next);
 * nframes if none. */
size_t vb_index_find (const struct vb_index *ix, uint64_t off);
/* The piece holding disk byte OFF of compressed data frame FRAME. */
size_t vb_index_find_piece (const struct vb_index *ix, size_t frame,
                            uint64_t off);
/* Decompress piece P from RF into OUT (P's length bytes), with the
 * checksums and the exact length checked; IN is scratch of at least
 * max_csize bytes.  -1 naming NAME and the piece's file offset. */
int vb_index_piece_read (const struct vb_index *ix, struct vb_rfile *rf,
                         const char *name,
                         size_t p, void *in, void *out);

#endif
