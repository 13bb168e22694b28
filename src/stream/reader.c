/* SPDX-License-Identifier: GPL-3.0-or-later */
/* reader.c: pull reader over a seekable file descriptor.
 *
 * Everything read from the file is checked before it is used, and every
 * error names the file and the byte offset where the problem is.  Payloads
 * are handed out in caller-sized chunks and compressed pieces are decoded
 * in a stream, so memory stays bounded (a few hundred KiB) whatever the
 * frame sizes.  A compressed frame can also be passed over by its layout
 * alone, each piece's place and size handed to a caller that indexes the
 * file (vb_reader_pass).  After an error the reader refuses further calls.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lz4frame.h>
#include <zstd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "target/target.h"
#include "stream/stream.h"

#define IBUF_SIZE (256 * 1024)
#define SCRATCH_SIZE (64 * 1024)
/* json-c needs ~100 bytes per trailer entry: cap the trailer's size. */
#define TRAILER_MAX (16 * 1024 * 1024)

struct vb_reader {
  struct vb_rfile *rf;
  char *name;
  struct vb_meta meta;
  uint64_t pos;                 /* next byte to parse */
  uint64_t end;                 /* where the stop frame must end */
  bool compressed;
  enum vb_comp_method method;
  struct vb_trailer trailer;
  size_t ndata;                 /* data frames seen */
  uint64_t disk_end;            /* end of the previous frame's range */
  uint64_t data_sum;
  bool done, failed;
  char *errmsg;                 /* the first error, repeated by later calls */

  /* The current data frame. */
  bool in_data;
  struct vb_frame cur;
  uint64_t out_left;            /* uncompressed bytes not yet returned */

  /* Its compressed pieces. */
  struct vb_decomp *dec;
  const uint64_t *pieces;
  size_t npieces, piece;
  bool piece_open;
  uint64_t piece_off;           /* file offset where the piece starts */
  uint64_t piece_in_left;       /* compressed bytes not yet in ibuf */
  uint64_t piece_out;
  unsigned char *ibuf, *scratch;
  size_t ibuf_pos, ibuf_len;
  LZ4F_dctx *lz4hdr;            /* reads lz4 piece headers (vb_reader_pass) */
};

/* Remember the first error so that later calls report it again. */
static int
fail (struct vb_reader *r)
{
  if (!r->failed)
    r->errmsg = strdup (vb_get_error ());
  r->failed = true;
  return -1;
}

static int __attribute__((format (printf, 3, 4)))
rerr (struct vb_reader *r, uint64_t off, const char *fmt, ...)
{
  char msg[512];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  vb_set_error ("%s: offset 0x%" PRIx64 ": %s", r->name, off, msg);
  return fail (r);
}

/* Add file and offset context to an error set by a lower layer. */
static int
rprefix (struct vb_reader *r, uint64_t off)
{
  vb_prefix_error ("%s: offset 0x%" PRIx64, r->name, off);
  return fail (r);
}

static int
read_at (struct vb_reader *r, uint64_t off, void *buf, size_t len)
{
  ssize_t n = vb_rfile_pread (r->rf, buf, len, off);

  if (n == -1) {
    vb_set_error_errno (vb_get_errno (), "%s: offset 0x%" PRIx64 ": read",
                        r->name, off);
    return fail (r);
  }
  if ((size_t) n < len)
    return rerr (r, off + n, "unexpected end of file (truncated)");
  return 0;
}

/* Is there room for NEED bytes at OFF before LIMIT? */
static int
need (struct vb_reader *r, uint64_t off, uint64_t len, uint64_t limit,
      const char *what)
{
  if (off > limit || len > limit - off)
    return rerr (r, off, "truncated: %s needs 0x%" PRIx64 " bytes but the "
                 "stream ends at 0x%" PRIx64, what, len, limit);
  return 0;
}

static int
read_header (struct vb_reader *r, uint64_t off, enum vb_frame_kind *kind,
             uint64_t *start, uint64_t *length)
{
  char hdr[VB_FRAME_LEN];

  if (read_at (r, off, hdr, sizeof hdr) == -1)
    return -1;
  if (vb_frame_parse (hdr, kind, start, length) == -1)
    return rprefix (r, off);
  return 0;
}

static int
check_crlf (struct vb_reader *r, uint64_t off, const char *what)
{
  char t[VB_TERM_LEN];

  if (read_at (r, off, t, sizeof t) == -1)
    return -1;
  if (memcmp (t, VB_TERM, VB_TERM_LEN) != 0)
    return rerr (r, off, "%s not followed by CR LF", what);
  return 0;
}

/* Read LEN bytes of JSON at OFF followed by CR LF into a malloc'd buffer. */
static char *
read_json (struct vb_reader *r, uint64_t off, uint64_t len, const char *what)
{
  char *buf = malloc (len + VB_TERM_LEN);

  if (buf == NULL) {
    vb_set_error_errno (errno, "malloc");
    return NULL;
  }
  if (read_at (r, off, buf, len + VB_TERM_LEN) == -1) {
    free (buf);
    return NULL;
  }
  if (memcmp (buf + len, VB_TERM, VB_TERM_LEN) != 0) {
    free (buf);
    rerr (r, off + len, "%s not followed by CR LF", what);
    return NULL;
  }
  return buf;
}

static int
read_meta (struct vb_reader *r, uint64_t file_size)
{
  enum vb_frame_kind kind;
  uint64_t start, len;
  CLEANUP_FREE char *json = NULL;

  if (need (r, 0, VB_FRAME_LEN, file_size, "the meta frame header") == -1 ||
      read_header (r, 0, &kind, &start, &len) == -1)
    return -1;
  if (kind != VB_FRAME_META || start != 0)
    return rerr (r, 0, "stream does not start with a meta frame");
  if (len > VB_META_MAX)
    return rerr (r, 0, "metadata length 0x%" PRIx64 " is too large", len);
  if (need (r, VB_FRAME_LEN, len + VB_TERM_LEN, file_size, "the metadata") == -1)
    return -1;
  json = read_json (r, VB_FRAME_LEN, len, "metadata");
  if (json == NULL)
    return -1;
  if (vb_meta_from_json (json, len, &r->meta) == -1)
    return rprefix (r, VB_FRAME_LEN);
  r->pos = VB_FRAME_LEN + len + VB_TERM_LEN;
  return 0;
}

/* Decide how payloads are stored; the peer's rule: version 2 and
 * "compressed" not false. */
static int
setup_compression (struct vb_reader *r)
{
  const char *method = r->meta.compression_method;
  enum vb_comp_method m;

  if (r->meta.stream_version > VB_STREAM_VERSION)
    return rerr (r, VB_FRAME_LEN, "unsupported stream version %d",
                 r->meta.stream_version);
  r->compressed = r->meta.stream_version == 2 && r->meta.compressed;
  if (!r->compressed)
    return 0;
  if (strcmp (method, "lz4") == 0)
    m = VB_COMP_LZ4;
  else if (strcmp (method, "zstd") == 0)
    m = VB_COMP_ZSTD;
  else
    return rerr (r, VB_FRAME_LEN, "unknown compression method \"%s\"", method);
  r->method = m;
  r->dec = vb_decomp_new (m);
  r->ibuf = malloc (IBUF_SIZE);
  if (r->dec == NULL || r->ibuf == NULL) {
    if (r->ibuf == NULL)
      vb_set_error_errno (errno, "malloc");
    return fail (r);
  }
  return 0;
}

/* Compressed files end with: trailer JSON, CR LF, comp frame. */
static int
read_trailer (struct vb_reader *r, uint64_t file_size)
{
  uint64_t min = r->pos + VB_FRAME_LEN, hoff, start, len, joff;
  enum vb_frame_kind kind;
  char hdr[VB_FRAME_LEN];
  CLEANUP_FREE char *json = NULL;

  /* After the stop frame: at least "[]", CR LF and the comp frame. */
  if (need (r, min, 2 + VB_TERM_LEN + VB_FRAME_LEN, file_size,
            "compression trailer and comp frame") == -1)
    return -1;
  hoff = file_size - VB_FRAME_LEN;
  if (read_at (r, hoff, hdr, sizeof hdr) == -1)
    return -1;
  if (vb_frame_parse (hdr, &kind, &start, &len) == -1) {
    vb_prefix_error ("no comp frame at the end of a compressed file "
                     "(truncated?)");
    return rprefix (r, hoff);
  }
  if (kind != VB_FRAME_COMP || start != 0)
    return rerr (r, hoff, "compressed file does not end with a comp frame "
                 "(truncated?)");
  if (len > TRAILER_MAX || len > hoff - VB_TERM_LEN - min)
    return rerr (r, hoff, "comp frame length 0x%" PRIx64 " is impossible", len);
  joff = hoff - VB_TERM_LEN - len;
  json = read_json (r, joff, len, "compression trailer");
  if (json == NULL)
    return -1;
  if (vb_trailer_from_json (json, len, &r->trailer) == -1)
    return rprefix (r, joff);
  r->end = joff;
  return 0;
}

struct vb_reader *
vb_reader_open (struct vb_rfile *rf, const char *name)
{
  struct vb_reader *r = calloc (1, sizeof *r);
  uint64_t size;

  if (r == NULL || (r->name = strdup (name ? name : "(stream)")) == NULL) {
    vb_set_error_errno (errno, "calloc");
    free (r);
    return NULL;
  }
  r->rf = rf;
  vb_trailer_init (&r->trailer);
  size = rf->size;
  r->end = size;
  if (read_meta (r, size) == -1 || setup_compression (r) == -1 ||
      (r->compressed && read_trailer (r, size) == -1))
    goto err;
  return r;
 err:
  vb_reader_close (r);
  return NULL;
}

void
vb_reader_close (struct vb_reader *r)
{
  if (r == NULL)
    return;
  vb_meta_clear (&r->meta);
  vb_trailer_clear (&r->trailer);
  vb_decomp_free (r->dec);
  LZ4F_freeDecompressionContext (r->lz4hdr);
  free (r->ibuf);
  free (r->scratch);
  free (r->errmsg);
  free (r->name);
  free (r);
}

void
vb_reader_take_meta (struct vb_reader *r, struct vb_meta *m)
{
  *m = r->meta;
  memset (&r->meta, 0, sizeof r->meta);
}

static int
sticky (struct vb_reader *r)
{
  vb_set_error ("%s", r->errmsg ? r->errmsg
                : "reader stopped after an earlier error");
  return -1;
}

/* ---- frames ---- */

static int
check_range (struct vb_reader *r, uint64_t off, uint64_t start, uint64_t len)
{
  uint64_t vsize = r->meta.virtual_size;

  if (len == 0)
    return rerr (r, off, "empty %s frame", vb_frame_kind_name (r->cur.kind));
  if (start < r->disk_end)
    return rerr (r, off, "frame at disk offset 0x%" PRIx64 " overlaps or "
                 "precedes the previous frame (ends at 0x%" PRIx64 ")",
                 start, r->disk_end);
  if (len > vsize || start > vsize - len)
    return rerr (r, off, "frame 0x%" PRIx64 "+0x%" PRIx64 " lies beyond the "
                 "virtual size 0x%" PRIx64, start, len, vsize);
  r->disk_end = start + len;
  return 0;
}

static int
begin_data (struct vb_reader *r, uint64_t off, uint64_t len)
{
  uint64_t payload = len;

  if (r->compressed) {
    size_t i = r->ndata;

    if (i >= r->trailer.nframes)
      return rerr (r, off, "data frame %zu has no compression trailer entry "
                   "(the trailer lists %zu)", i, r->trailer.nframes);
    r->pieces = r->trailer.pieces[i];
    r->npieces = r->trailer.npieces[i];
    payload = 0;
    for (size_t j = 0; j < r->npieces; j++) {
      if (r->pieces[j] > UINT64_MAX - payload)
        return rerr (r, off, "compressed sizes of data frame %zu overflow", i);
      payload += r->pieces[j];
    }
    r->piece = 0;
    r->piece_open = false;
  }
  if (need (r, off + VB_FRAME_LEN, payload, r->end, "the data payload") == -1 ||
      need (r, off + VB_FRAME_LEN + payload, VB_TERM_LEN, r->end,
            "the CR LF after the data payload") == -1)
    return -1;
  r->data_sum += len;           /* cannot wrap: ranges are disjoint */
  r->ndata++;
  r->in_data = true;
  r->out_left = len;
  r->pos = off + VB_FRAME_LEN;
  return 0;
}

static int
end_stream (struct vb_reader *r, uint64_t off, uint64_t start, uint64_t len)
{
  if (start != 0 || len != 0)
    return rerr (r, off, "stop frame with non-zero fields");
  r->pos = off + VB_FRAME_LEN;
  if (r->pos != r->end)
    return rerr (r, r->pos, "0x%" PRIx64 " unexpected bytes after the stop "
                 "frame", r->end - r->pos);
  if (r->compressed && r->ndata != r->trailer.nframes)
    return rerr (r, off, "file has %zu data frames but the compression "
                 "trailer lists %zu", r->ndata, r->trailer.nframes);
  if (r->data_sum != r->meta.data_size)
    return rerr (r, off, "data frames hold 0x%" PRIx64 " bytes but the "
                 "metadata says dataSize 0x%" PRIx64,
                 r->data_sum, r->meta.data_size);
  r->done = true;
  return 0;
}

int
vb_reader_next (struct vb_reader *r, struct vb_frame *f)
{
  enum vb_frame_kind kind;
  uint64_t off, start, len;

  if (r->failed)
    return sticky (r);
  if (r->done)
    return 0;
  if (r->in_data && vb_reader_skip (r) == -1)
    return -1;
  off = r->pos;
  if (need (r, off, VB_FRAME_LEN, r->end, "a frame header") == -1 ||
      read_header (r, off, &kind, &start, &len) == -1)
    return -1;
  r->cur = (struct vb_frame) { kind, start, len, off };
  switch (kind) {
  case VB_FRAME_STOP:
    if (end_stream (r, off, start, len) == -1)
      return -1;
    break;
  case VB_FRAME_ZERO:
    if (check_range (r, off, start, len) == -1)
      return -1;
    r->pos = off + VB_FRAME_LEN;
    break;
  case VB_FRAME_DATA:
    if (check_range (r, off, start, len) == -1 ||
        begin_data (r, off, len) == -1)
      return -1;
    break;
  default:
    return rerr (r, off, "unexpected %s frame", vb_frame_kind_name (kind));
  }
  *f = r->cur;
  return 1;
}

/* ---- payloads ---- */

static int
end_payload (struct vb_reader *r)
{
  if (check_crlf (r, r->pos, "data payload") == -1)
    return -1;
  r->pos += VB_TERM_LEN;
  r->in_data = false;
  return 0;
}

static ssize_t
read_plain (struct vb_reader *r, void *buf, size_t len)
{
  size_t n = len < r->out_left ? len : r->out_left;

  if (read_at (r, r->pos, buf, n) == -1)
    return -1;
  r->pos += n;
  r->out_left -= n;
  if (r->out_left == 0 && end_payload (r) == -1)
    return -1;
  return n;
}

static int
open_piece (struct vb_reader *r)
{
  vb_decomp_reset (r->dec);
  r->piece_open = true;
  r->piece_off = r->pos;
  r->piece_in_left = r->pieces[r->piece];
  r->piece_out = 0;
  r->ibuf_pos = r->ibuf_len = 0;
  return 0;
}

static int
fill_ibuf (struct vb_reader *r)
{
  size_t n;

  if (r->ibuf_pos < r->ibuf_len || r->piece_in_left == 0)
    return 0;
  n = r->piece_in_left < IBUF_SIZE ? r->piece_in_left : IBUF_SIZE;
  if (read_at (r, r->pos, r->ibuf, n) == -1)
    return -1;
  r->pos += n;
  r->piece_in_left -= n;
  r->ibuf_pos = 0;
  r->ibuf_len = n;
  return 0;
}

/* The decoder made no progress: say why. */
static int
stalled (struct vb_reader *r)
{
  if (r->ibuf_pos < r->ibuf_len || r->piece_in_left > 0)
    return rerr (r, r->piece_off, "piece %zu of data frame at 0x%" PRIx64
                 " decompresses to more than the frame length",
                 r->piece, r->cur.file_offset);
  return rerr (r, r->piece_off, "piece %zu of data frame at 0x%" PRIx64
               " is truncated (its trailer size is too small)",
               r->piece, r->cur.file_offset);
}

/* One decoder step into BUF[LEN]; returns bytes produced or -1. */
static ssize_t
step_piece (struct vb_reader *r, unsigned char *buf, size_t len)
{
  size_t il, ol = len < r->out_left ? len : r->out_left;
  int rc;

  if (fill_ibuf (r) == -1)
    return -1;
  il = r->ibuf_len - r->ibuf_pos;
  rc = vb_decomp_run (r->dec, r->ibuf + r->ibuf_pos, &il, buf, &ol);
  if (rc == -1) {
    vb_prefix_error ("piece %zu of data frame at 0x%" PRIx64,
                     r->piece, r->cur.file_offset);
    return rprefix (r, r->piece_off);
  }
  r->ibuf_pos += il;
  r->out_left -= ol;
  r->piece_out += ol;
  if (r->piece_out > VB_STREAM_MAX_PIECE)
    return rerr (r, r->piece_off, "piece %zu decompresses to more than "
                 "%u bytes", r->piece, VB_STREAM_MAX_PIECE);
  if (rc == 1) {
    if (r->ibuf_pos != r->ibuf_len || r->piece_in_left != 0)
      return rerr (r, r->piece_off, "piece %zu of data frame at 0x%" PRIx64
                   " ends before its trailer size", r->piece,
                   r->cur.file_offset);
    r->piece_open = false;
    r->piece++;
  }
  else if (il == 0 && ol == 0 && (len > 0 || r->out_left == 0))
    return stalled (r);
  return ol;
}

/* After the last piece: the lengths must have added up, then CR LF. */
static int
end_pieces (struct vb_reader *r)
{
  if (r->out_left > 0)
    return rerr (r, r->cur.file_offset, "data frame pieces hold 0x%" PRIx64
                 " bytes less than the frame length", r->out_left);
  return end_payload (r);
}

static ssize_t
read_compressed (struct vb_reader *r, unsigned char *buf, size_t len)
{
  size_t got = 0;

  while (r->piece < r->npieces) {
    ssize_t n;

    if (!r->piece_open && open_piece (r) == -1)
      return -1;
    if (got == len && r->out_left > 0)
      break;
    n = step_piece (r, buf + got, len - got);
    if (n == -1)
      return -1;
    got += n;
  }
  if (r->piece == r->npieces && end_pieces (r) == -1)
    return -1;
  return got;
}

ssize_t
vb_reader_read (struct vb_reader *r, void *buf, size_t len)
{
  if (r->failed)
    return sticky (r);
  if (!r->in_data)
    return 0;
  if (!r->compressed)
    return read_plain (r, buf, len);
  return read_compressed (r, buf, len);
}

int
vb_reader_skip (struct vb_reader *r)
{
  if (r->failed)
    return sticky (r);
  if (!r->in_data)
    return 0;
  if (!r->compressed) {
    r->pos += r->out_left;
    r->out_left = 0;
    return end_payload (r);
  }
  if (r->scratch == NULL && (r->scratch = malloc (SCRATCH_SIZE)) == NULL) {
    vb_set_error_errno (errno, "malloc");
    return fail (r);
  }
  while (r->in_data)
    if (read_compressed (r, r->scratch, SCRATCH_SIZE) == -1)
      return -1;
  return 0;
}

/* ---- pieces by layout ---- */

bool
vb_reader_compression (struct vb_reader *r, enum vb_comp_method *method)
{
  if (r->compressed)
    *method = r->method;
  return r->compressed;
}

/* Pieces are passed over only in a data frame none of whose pieces was
 * read through vb_reader_read.  A caller's mistake: not sticky. */
static int
check_pieces (struct vb_reader *r)
{
  if (!r->piece_open)
    return 0;
  vb_set_error ("%s: a data frame read in part cannot be passed over",
                r->name);
  return -1;
}

/* The content size that the piece's own frame header stores. */
static int
header_content (struct vb_reader *r, const void *buf, size_t len,
                uint64_t *content)
{
  unsigned long long c;

  if (r->method == VB_COMP_ZSTD) {
    c = ZSTD_getFrameContentSize (buf, len);
    if (c == ZSTD_CONTENTSIZE_ERROR)
      return rerr (r, r->pos, "piece %zu of data frame at 0x%" PRIx64 " has "
                   "no zstd frame header", r->piece, r->cur.file_offset);
  }
  else {
    LZ4F_frameInfo_t info;
    size_t n = len, rc;

    if (!r->lz4hdr &&
        LZ4F_isError (LZ4F_createDecompressionContext (&r->lz4hdr,
                                                       LZ4F_VERSION))) {
      r->lz4hdr = NULL;
      vb_set_error ("lz4: cannot create a decompression context");
      return fail (r);
    }
    LZ4F_resetDecompressionContext (r->lz4hdr);
    rc = LZ4F_getFrameInfo (r->lz4hdr, &info, buf, &n);
    if (LZ4F_isError (rc))
      return rerr (r, r->pos, "piece %zu of data frame at 0x%" PRIx64 ": "
                   "lz4 frame header: %s", r->piece, r->cur.file_offset,
                   LZ4F_getErrorName (rc));
    /* lz4 stores 0 for "unknown". */
    c = info.contentSize ? info.contentSize : ZSTD_CONTENTSIZE_UNKNOWN;
  }
  if (c == ZSTD_CONTENTSIZE_UNKNOWN)
    return rerr (r, r->pos, "piece %zu of data frame at 0x%" PRIx64 " does "
                 "not store its content size", r->piece, r->cur.file_offset);
  *content = c;
  return 0;
}

/* The content sizes must add up to the frame length, as when the pieces
 * are decompressed by vb_reader_read. */
static int
check_content (struct vb_reader *r, uint64_t content)
{
  if (content == 0 || content > VB_STREAM_MAX_PIECE)
    return rerr (r, r->pos, "piece %zu of data frame at 0x%" PRIx64 " holds "
                 "0x%" PRIx64 " bytes (allowed: 1 to 0x%x)", r->piece,
                 r->cur.file_offset, content, VB_STREAM_MAX_PIECE);
  if (content > r->out_left)
    return rerr (r, r->pos, "piece %zu of data frame at 0x%" PRIx64 " holds "
                 "0x%" PRIx64 " bytes, more than the 0x%" PRIx64 " left of "
                 "the frame length", r->piece, r->cur.file_offset, content,
                 r->out_left);
  return 0;
}

/* A piece's frame header is at most 19 bytes (lz4) or 18 (zstd). */
#define PIECE_HEAD 32

int
vb_reader_pass (struct vb_reader *r, vb_reader_piece_fn *fn, void *op)
{
  unsigned char head[PIECE_HEAD];
  uint64_t size, content = 0;

  if (r->failed)
    return sticky (r);
  if (!r->in_data)
    return 0;
  if (!r->compressed)
    return vb_reader_skip (r);
  if (check_pieces (r) == -1)
    return -1;
  for (; r->piece < r->npieces; r->piece++) {
    size = r->pieces[r->piece];
    if (read_at (r, r->pos, head, size < PIECE_HEAD ? size : PIECE_HEAD) == -1 ||
        header_content (r, head, size < PIECE_HEAD ? size : PIECE_HEAD,
                        &content) == -1 ||
        check_content (r, content) == -1)
      return -1;
    if (fn && fn (op, r->pos, size, content) == -1)
      return fail (r);
    r->pos += size;
    r->out_left -= content;
  }
  return end_pieces (r);
}

int
vb_stream_read_meta (struct vb_rfile *rf, const char *name,
                     struct vb_meta *m)
{
  struct vb_reader *r = vb_reader_open (rf, name);

  if (r == NULL)
    return -1;
  vb_reader_take_meta (r, m);
  vb_reader_close (r);
  return 0;
}
