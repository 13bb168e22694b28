/* SPDX-License-Identifier: GPL-3.0-or-later */
/* stream.h: the sparse stream format (virtnbdbackup-compatible), described
 * byte by byte in docs/stream-format.md.
 *
 * Contract: this unit only turns values into bytes and bytes into values.
 * It never opens files or prints.  Readers treat any deviation (unknown
 * kind, non-hex digit, missing CR LF, bad JSON, bad lz4 checksum, lengths
 * that overflow) as corruption: return -1 with a message that names the
 * byte offset.  Lengths read from input are never trusted for allocation
 * beyond VB_STREAM_MAX_PIECE.
 *
 * Ownership: strings in struct vb_meta are owned by the struct
 * (vb_meta_clear frees them).  Writers append into caller buffers.
 *
 * Version: VB_STREAM_VERSION is what we write (2, the peer's).  Bump it only
 * when a change would make the peer misread our files.
 */
#ifndef VB_STREAM_H
#define VB_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>            /* ssize_t */

#define VB_STREAM_VERSION 2
#define VB_FRAME_LEN 40                 /* "kind start len\r\n" */
#define VB_TERM "\r\n"
#define VB_TERM_LEN 2
/* The peer compresses per NBD request of the server's maximum size: QEMU
 * advertises 32 MiB.  Compressed data frames are split at this size. */
#define VB_STREAM_MAX_PIECE (32u * 1024 * 1024)
/* Metadata JSON larger than this is treated as corrupt. */
#define VB_META_MAX (1024 * 1024)

enum vb_frame_kind {
  VB_FRAME_META, VB_FRAME_DATA, VB_FRAME_ZERO, VB_FRAME_STOP, VB_FRAME_COMP,
};

/* Format a 40-byte header into OUT (not NUL terminated). */
void vb_frame_format (char out[VB_FRAME_LEN], enum vb_frame_kind kind,
                      uint64_t start, uint64_t length);
/* Parse a 40-byte header.  -1 (with error) if malformed. */
int vb_frame_parse (const char in[VB_FRAME_LEN], enum vb_frame_kind *kind,
                    uint64_t *start, uint64_t *length);
const char *vb_frame_kind_name (enum vb_frame_kind kind);

/* Per-file metadata (the meta frame's JSON). */
struct vb_meta {
  uint64_t virtual_size;
  uint64_t data_size;          /* sum of uncompressed data frame lengths */
  char *date;                  /* "2026-11-22T01:31:23.238748" */
  char *disk_name;             /* target dev, "sda" */
  char *disk_format;           /* "qcow2", "raw" */
  char *checkpoint_name;       /* "" for copy */
  char *parent_checkpoint;     /* "" for full and copy */
  bool compressed;             /* JSON false, or the level */
  int compression_level;       /* valid when compressed */
  char *compression_method;    /* "lz4" (peer) or "zstd" (ours) */
  bool incremental;            /* true for inc and diff */
  int stream_version;          /* 1 or 2 */
};

void vb_meta_clear (struct vb_meta *m);
/* Serialise as the peer does: Python json.dumps(indent=4), keys in the
 * peer's order.  Returns a malloc'd string; *LEN its length. */
char *vb_meta_to_json (const struct vb_meta *m, size_t *len);
/* Parse JSON (unknown keys ignored; "stream-version" accepted).  Missing
 * required keys or wrong types are errors.  M is cleared first. */
int vb_meta_from_json (const char *json, size_t len, struct vb_meta *m);
/* Current local time in the peer's format into a malloc'd string. */
char *vb_meta_now (void);

/* ---- lz4 framing (peer-compatible) ----
 * Each piece (at most VB_STREAM_MAX_PIECE bytes of disk data) is one lz4
 * frame with block and content checksums on and the content size stored,
 * 64 KiB linked blocks, as python-lz4's lz4.frame.compress() makes it.
 * The streaming compressor lets the caller feed a piece in smaller buffers
 * so memory stays small; the output is identical to one-shot compression.
 */
struct vb_lz4c;
struct vb_lz4c *vb_lz4c_new (int level);
void vb_lz4c_free (struct vb_lz4c *c);
/* Start a frame for a piece of PIECE_LEN bytes.  Appends the frame header
 * to OUT (capacity OUTCAP), returns bytes appended or -1. */
ssize_t vb_lz4c_begin (struct vb_lz4c *c, uint64_t piece_len,
                       void *out, size_t outcap);
ssize_t vb_lz4c_update (struct vb_lz4c *c, const void *in, size_t len,
                        void *out, size_t outcap);
ssize_t vb_lz4c_end (struct vb_lz4c *c, void *out, size_t outcap);
/* Worst-case output of one update of LEN bytes (use for OUTCAP);
 * vb_lz4c_bound (c, 0) is enough for begin and for end. */
size_t vb_lz4c_bound (struct vb_lz4c *c, size_t len);

/* Decompress one whole lz4 frame IN[INLEN] into OUT (exactly OUTLEN bytes
 * expected).  Verifies checksums.  -1 on any mismatch. */
int vb_lz4_decompress_frame (const void *in, size_t inlen,
                             void *out, size_t outlen);

/* ---- zstd framing (ours, "compressionMethod": "zstd") ----
 * Same layout as lz4: one zstd frame per piece (content size stored,
 * checksum flag on), same trailer.  Same calling convention as vb_lz4c. */
struct vb_zstdc;
struct vb_zstdc *vb_zstdc_new (int level);
void vb_zstdc_free (struct vb_zstdc *c);
ssize_t vb_zstdc_begin (struct vb_zstdc *c, uint64_t piece_len,
                        void *out, size_t outcap);
ssize_t vb_zstdc_update (struct vb_zstdc *c, const void *in, size_t len,
                         void *out, size_t outcap);
ssize_t vb_zstdc_end (struct vb_zstdc *c, void *out, size_t outcap);
size_t vb_zstdc_bound (struct vb_zstdc *c, size_t len);
/* (begin appends nothing: the header comes with the first output.) */
int vb_zstd_decompress_frame (const void *in, size_t inlen,
                              void *out, size_t outlen);

/* ---- streaming decompression of one piece ----
 * Bounded memory whatever the piece size: used by the reader, usable by
 * anyone holding a piece.  run() consumes up to *INLEN bytes and produces up
 * to *OUTLEN, updating both to what it did; returns 1 when the frame is
 * complete (checksums verified), 0 if it needs more input or output space,
 * -1 on corrupt input.  reset() before the next frame. */
enum vb_comp_method { VB_COMP_LZ4, VB_COMP_ZSTD };
struct vb_decomp;
struct vb_decomp *vb_decomp_new (enum vb_comp_method method);
void vb_decomp_free (struct vb_decomp *d);
void vb_decomp_reset (struct vb_decomp *d);
int vb_decomp_run (struct vb_decomp *d, const void *in, size_t *inlen,
                   void *out, size_t *outlen);

/* ---- compression trailer ----
 * One entry per data frame, in file order: the list of the compressed sizes
 * of its pieces.  Serialised as the peer does: an integer for one piece,
 * {"<total>": [a, b, ...]} for several. */
struct vb_trailer {
  size_t nframes;
  size_t *npieces;             /* per frame */
  uint64_t **pieces;           /* per frame: npieces[i] compressed sizes */
  size_t cap;
  /* Per frame, true if written as {"total": [...]}.  The peer uses
   * that form for every frame >= VB_STREAM_MAX_PIECE, even with one piece. */
  bool *as_object;
};
void vb_trailer_init (struct vb_trailer *t);
void vb_trailer_clear (struct vb_trailer *t);
int vb_trailer_add (struct vb_trailer *t, const uint64_t *sizes, size_t n);
/* As vb_trailer_add, but picks the form exactly as the peer does from
 * the data frame's uncompressed length.  Writers should use this one. */
int vb_trailer_add_frame (struct vb_trailer *t, uint64_t frame_len,
                          const uint64_t *sizes, size_t n);
/* json.dumps(list) form: "[123, {\"456\": [200, 256]}]" */
char *vb_trailer_to_json (const struct vb_trailer *t, size_t *len);
int vb_trailer_from_json (const char *json, size_t len, struct vb_trailer *t);

/* ---- reader ----
 * A pull reader over a read handle (target/target.h).  It validates as it goes:
 * frame syntax, CR LF terminators, ascending non-overlapping offsets inside
 * virtual_size, data_size sum, trailer consistency, lz4 checksums.
 */
struct vb_reader;
struct vb_rfile;
struct vb_reader *vb_reader_open (struct vb_rfile *rf, const char *name);
void vb_reader_close (struct vb_reader *r);     /* does not close RF */
/* Move the metadata out into M (the caller owns it).  The reader checks
 * frames against it, so take it only once the walk is over. */
void vb_reader_take_meta (struct vb_reader *r, struct vb_meta *m);

struct vb_frame {
  enum vb_frame_kind kind;     /* DATA, ZERO or STOP */
  uint64_t start, length;      /* disk range (uncompressed) */
  uint64_t file_offset;        /* where the header starts in the file */
};
/* Next frame: 1 with *F filled, 0 after STOP was returned (end), -1 error. */
int vb_reader_next (struct vb_reader *r, struct vb_frame *f);
/* Read the payload of the current DATA frame in order, decompressing as
 * needed: fills up to LEN bytes at BUF, returns bytes (0 when the frame's
 * payload is done), -1 on error.  Must consume all before next(). */
ssize_t vb_reader_read (struct vb_reader *r, void *buf, size_t len);
/* Skip the rest of the current frame's payload (still validated). */
int vb_reader_skip (struct vb_reader *r);

/* True if payloads are compressed, with *METHOD set. */
bool vb_reader_compression (struct vb_reader *r, enum vb_comp_method *method);

/* Step over the rest of the current data frame by its layout alone, for
 * callers that index a file: no payload byte is read or decompressed.  Of
 * a compressed frame only each piece's own frame header is read, for its
 * content size (1 to VB_STREAM_MAX_PIECE bytes, and the sizes must add
 * up to the frame length), and FN (may be NULL) gets the piece's file
 * offset, compressed size and content size; FN returning -1 (with an
 * error) stops it.  The payload's CR LF is
 * checked.  The content itself is trusted only once decompressed. */
typedef int vb_reader_piece_fn (void *op, uint64_t file_offset,
                                uint64_t csize, uint64_t content);
int vb_reader_pass (struct vb_reader *r, vb_reader_piece_fn *fn, void *op);

/* Parse a whole file just for its metadata (used by dump and chain). */
int vb_stream_read_meta (struct vb_rfile *rf, const char *name,
                         struct vb_meta *m);
/* Walk a whole file's frame headers (validated as the reader does, the
 * payloads passed over as vb_reader_pass does) and count its ZERO frames
 * (scan.c). */
int vb_stream_count_zero_frames (struct vb_rfile *rf, const char *name,
                                 uint64_t *count);

/* Internal to the unit (meta.c, trailer.c): parse exactly LEN bytes of
 * strict JSON; WHAT names it in errors.  Caller owns the result. */
struct json_object;
struct json_object *vb_json_parse (const char *json, size_t len,
                                   const char *what);

#endif
