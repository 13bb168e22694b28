/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The stream writer: frames, compressed pieces, trailer and the header,
 * first or last, through a target file. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <libdeflate.h>
#include <zlib.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "stream/writer.h"
#include "target/target.h"

struct vb_swriter {
  struct vb_tfile *f;
  struct vb_swriter_opts o;
  uint32_t adler;              /* of the whole file */
  uint64_t written;
  struct vb_zstdc **zs;        /* one per transform worker */
  struct vb_lz4c **lzs;
  unsigned nworkers;
  size_t transform_cap;
  /* the current data frame */
  uint64_t ext_end, ext_len, pos, piece_csize;
  uint64_t *sizes;
  size_t nsizes, capsizes;
  struct vb_trailer trailer;
  /* header last */
  bool hdr_pending;            /* no room kept for it yet */
  uint64_t hdr_room;
};

static int reserve_header (struct vb_swriter *w);

static int
out (struct vb_swriter *w, const void *buf, size_t len)
{
  if (w->hdr_pending && reserve_header (w) < 0)
    return -1;
  w->adler = libdeflate_adler32 (w->adler, buf, len);
  if (vb_tfile_write (w->f, buf, len) < 0)
    return -1;
  w->written += len;
  return 0;
}

static int
out_frame (struct vb_swriter *w, enum vb_frame_kind k, uint64_t a, uint64_t b)
{
  char hdr[VB_FRAME_LEN];

  vb_frame_format (hdr, k, a, b);
  return out (w, hdr, sizeof hdr);
}

/* The whole first frame for dataSize DATA: header, JSON, CR LF. */
static char *
meta_frame (const struct vb_swriter *w, uint64_t data, size_t *len)
{
  struct vb_meta m = w->o.meta;
  size_t jlen;
  CLEANUP_FREE char *json = NULL;
  char *b;

  m.data_size = data;
  if (!(json = vb_meta_to_json (&m, &jlen)))
    return NULL;
  if (!(b = malloc (VB_FRAME_LEN + jlen + VB_TERM_LEN))) {
    vb_set_error ("out of memory");
    return NULL;
  }
  vb_frame_format (b, VB_FRAME_META, 0, jlen);
  memcpy (b + VB_FRAME_LEN, json, jlen);
  memcpy (b + VB_FRAME_LEN + jlen, VB_TERM, VB_TERM_LEN);
  *len = VB_FRAME_LEN + jlen + VB_TERM_LEN;
  return b;
}

/* The first frame is ready: keep room for the header, sized by the
 * caller's estimate of dataSize (the header's length depends only on how
 * many digits it has). */
static int
reserve_header (struct vb_swriter *w)
{
  uint64_t v;
  size_t len;
  CLEANUP_FREE char *b = NULL;

  w->hdr_pending = false;
  if (w->o.guess (w->o.guess_op, &v) < 0 || !(b = meta_frame (w, v, &len)))
    return -1;
  w->hdr_room = len;
  return vb_tfile_reserve (w->f, len);
}

/* Header last: the true header into the room kept for it. */
static int
finish_header (struct vb_swriter *w, uint64_t data)
{
  uint64_t body = w->written;
  size_t len;
  CLEANUP_FREE char *b = meta_frame (w, data, &len);

  if (!b)
    return -1;
  if (len != w->hdr_room) {
    vb_info ("disk %s: the data size was %" PRIu64 " bytes, more digits or "
             "fewer than estimated: moving the %" PRIu64 " bytes written to "
             "fit the header", w->o.what, data, body);
    if (vb_tfile_shift (w->f, w->hdr_room, len, w->o.cancel) < 0)
      return -1;
  }
  if (vb_tfile_pwrite (w->f, b, len, 0) < 0)
    return -1;
  w->adler = adler32_combine64 (adler32 (1, (const Bytef *) b, len),
                                w->adler, body);
  w->written += len;
  return 0;
}

static int
push_size (struct vb_swriter *w, uint64_t v)
{
  if (w->nsizes == w->capsizes) {
    size_t cap = w->capsizes ? 2 * w->capsizes : 8;
    uint64_t *p = realloc (w->sizes, cap * sizeof *p);
    if (!p) {
      vb_set_error ("out of memory");
      return -1;
    }
    w->sizes = p;
    w->capsizes = cap;
  }
  w->sizes[w->nsizes++] = v;
  return 0;
}

static int
sink_begin (void *op, uint64_t off, uint64_t len)
{
  struct vb_swriter *w = op;

  w->ext_end = off + len;
  w->pos = off;
  w->nsizes = 0;
  w->piece_csize = 0;
  w->ext_len = len;
  return out_frame (w, VB_FRAME_DATA, off, len);
}

/* zstd: each piece is one frame, made by a worker thread. */
static ssize_t
zstd_piece (void *op, unsigned worker, const struct vb_piece *p,
            void *outb, size_t outcap)
{
  struct vb_swriter *w = op;
  struct vb_zstdc *z = w->zs[worker];
  ssize_t a, b, c;

  if ((a = vb_zstdc_begin (z, p->len, outb, outcap)) < 0 ||
      (b = vb_zstdc_update (z, p->in, p->len, (char *) outb + a,
                            outcap - a)) < 0 ||
      (c = vb_zstdc_end (z, (char *) outb + a + b, outcap - a - b)) < 0)
    return -1;
  return a + b + c;
}

/* lz4 (the peer's form): each VB_STREAM_MAX_PIECE span of an extent is one
 * lz4 frame, made by one worker from its pieces in order; different spans
 * are compressed in parallel.  The bytes equal one-shot compression. */
static ssize_t
lz4_piece (void *op, unsigned worker, const struct vb_piece *p,
           void *outb, size_t outcap)
{
  struct vb_swriter *w = op;
  struct vb_lz4c *z = w->lzs[worker];
  char *o = outb;
  ssize_t n;
  size_t used = 0;

  if (p->chain_first) {
    if ((n = vb_lz4c_begin (z, p->chain_len, o, outcap)) < 0)
      return -1;
    used += n;
  }
  if ((n = vb_lz4c_update (z, p->in, p->len, o + used, outcap - used)) < 0)
    return -1;
  used += n;
  if (p->chain_last) {
    if ((n = vb_lz4c_end (z, o + used, outcap - used)) < 0)
      return -1;
    used += n;
  }
  return used;
}

/* Sum the compressed bytes of each lz4 frame for the trailer. */
static int
lz4_data (struct vb_swriter *w, const void *buf, size_t len, size_t orig_len)
{
  uint64_t rel;

  if (out (w, buf, len) < 0)
    return -1;
  w->piece_csize += len;
  w->pos += orig_len;
  rel = w->pos - (w->ext_end - w->ext_len);
  if (rel % VB_STREAM_MAX_PIECE && w->pos != w->ext_end)
    return 0;
  if (push_size (w, w->piece_csize) < 0)
    return -1;
  w->piece_csize = 0;
  return 0;
}

static int
sink_data (void *op, const void *buf, size_t len, size_t orig_len)
{
  struct vb_swriter *w = op;

  if (w->o.progress)
    __atomic_add_fetch (w->o.progress, orig_len, __ATOMIC_RELAXED);
  if (w->zs)
    return out (w, buf, len) < 0 ? -1 : push_size (w, len);
  if (w->lzs)
    return lz4_data (w, buf, len, orig_len);
  return out (w, buf, len);
}

static int
sink_end (void *op)
{
  struct vb_swriter *w = op;

  if (out (w, VB_TERM, VB_TERM_LEN) < 0)
    return -1;
  if (w->zs)
    return vb_trailer_add (&w->trailer, w->sizes, w->nsizes);
  if (!w->lzs)
    return 0;
  return vb_trailer_add_frame (&w->trailer, w->ext_len, w->sizes,
                               w->nsizes);
}

static int
sink_zero (void *op, uint64_t off, uint64_t len)
{
  return out_frame (op, VB_FRAME_ZERO, off, len);
}

static int
setup_zstd (struct vb_swriter *w)
{
  if (!(w->zs = calloc (w->nworkers, sizeof *w->zs))) {
    vb_set_error ("out of memory");
    return -1;
  }
  for (unsigned i = 0; i < w->nworkers; i++)
    if (!(w->zs[i] = vb_zstdc_new (w->o.level)))
      return -1;
  w->transform_cap = vb_zstdc_bound (w->zs[0], w->o.req_size);
  return 0;
}

static int
setup_lz4 (struct vb_swriter *w)
{
  if (!(w->lzs = calloc (w->nworkers, sizeof *w->lzs))) {
    vb_set_error ("out of memory");
    return -1;
  }
  for (unsigned i = 0; i < w->nworkers; i++)
    if (!(w->lzs[i] = vb_lz4c_new (w->o.level)))
      return -1;
  /* begin and end of a frame may fall into the same piece */
  w->transform_cap = vb_lz4c_bound (w->lzs[0], w->o.req_size) +
                     2 * vb_lz4c_bound (w->lzs[0], 0);
  return 0;
}

static int
write_meta (struct vb_swriter *w)
{
  size_t len;
  CLEANUP_FREE char *b = meta_frame (w, w->o.meta.data_size, &len);

  return b ? out (w, b, len) : -1;
}

struct vb_swriter *
vb_swriter_new (struct vb_tfile *f, const struct vb_swriter_opts *o)
{
  struct vb_swriter *w = calloc (1, sizeof *w);

  if (!w) {
    vb_set_error ("out of memory");
    return NULL;
  }
  w->f = f;
  w->o = *o;
  w->adler = 1;
  w->nworkers = o->workers ? o->workers : 1;
  vb_trailer_init (&w->trailer);
  if (o->guess && !(f->t->ops->reserve && f->t->ops->shift)) {
    vb_set_error ("%s: the header can be written last only where the "
                  "target can seek", f->name);
    goto fail;
  }
  if (o->compress && (o->zstd ? setup_zstd (w) : setup_lz4 (w)) < 0)
    goto fail;
  w->hdr_pending = o->guess != NULL;
  if (!o->guess && write_meta (w) < 0)
    goto fail;
  return w;
 fail:
  vb_swriter_free (w);
  return NULL;
}

void
vb_swriter_free (struct vb_swriter *w)
{
  if (!w)
    return;
  for (unsigned i = 0; w->zs && i < w->nworkers; i++)
    vb_zstdc_free (w->zs[i]);
  free (w->zs);
  for (unsigned i = 0; w->lzs && i < w->nworkers; i++)
    vb_lz4c_free (w->lzs[i]);
  free (w->lzs);
  free (w->sizes);
  vb_trailer_clear (&w->trailer);
  free (w);
}

void
vb_swriter_sink (struct vb_swriter *w, struct vb_sink *sink)
{
  *sink = (struct vb_sink) {
    .begin_data = sink_begin, .data = sink_data, .end_data = sink_end,
    .zero = sink_zero, .op = w,
  };
  if (w->zs || w->lzs) {
    sink->transform = w->zs ? zstd_piece : lz4_piece;
    sink->transform_cap = w->transform_cap;
    sink->workers = w->nworkers;
    sink->chain_size = w->lzs ? VB_STREAM_MAX_PIECE : 0;
  }
}

static int
write_trailer (struct vb_swriter *w)
{
  size_t len;
  CLEANUP_FREE char *json = NULL;

  if (!w->zs && !w->lzs)
    return 0;
  json = vb_trailer_to_json (&w->trailer, &len);
  if (!json || out (w, json, len) < 0 || out (w, VB_TERM, VB_TERM_LEN) < 0)
    return -1;
  return out_frame (w, VB_FRAME_COMP, 0, len);
}

int
vb_swriter_finish (struct vb_swriter *w, uint64_t data_size)
{
  if (out_frame (w, VB_FRAME_STOP, 0, 0) < 0 || write_trailer (w) < 0)
    return -1;
  return w->o.guess ? finish_header (w, data_size) : 0;
}

uint32_t
vb_swriter_adler (const struct vb_swriter *w)
{
  return w->adler;
}

uint64_t
vb_swriter_written (const struct vb_swriter *w)
{
  return w->written;
}

/* One piece of a synchronous frame, as the copy engine would cut it. */
static int
sync_piece (struct vb_swriter *w, struct vb_sink *k, const char *buf,
            uint64_t rel, size_t n, void *tbuf)
{
  uint64_t cs = k->chain_size;
  struct vb_piece p = { buf + rel, n, true, true, n };
  ssize_t t;

  if (!k->transform)
    return k->data (w, buf + rel, n, n);
  if (cs) {
    p.chain_first = rel % cs == 0;
    p.chain_len = w->ext_len - rel / cs * cs < cs ? w->ext_len - rel / cs * cs
                                                  : cs;
    p.chain_last = (rel + n) % cs == 0 || rel + n == w->ext_len;
  }
  if ((t = k->transform (w, 0, &p, tbuf, k->transform_cap)) < 0)
    return -1;
  return k->data (w, tbuf, t, n);
}

int
vb_swriter_data (struct vb_swriter *w, uint64_t off, const void *buf,
                 size_t len)
{
  struct vb_sink k;
  size_t req = w->o.req_size ? w->o.req_size : VB_STREAM_MAX_PIECE;
  CLEANUP_FREE void *tbuf = NULL;

  vb_swriter_sink (w, &k);
  if (k.transform && !(tbuf = malloc (k.transform_cap))) {
    vb_set_error ("out of memory");
    return -1;
  }
  if (sink_begin (w, off, len) < 0)
    return -1;
  for (uint64_t rel = 0; rel < len; rel += req) {
    size_t n = len - rel < req ? len - rel : req;
    if (sync_piece (w, &k, buf, rel, n, tbuf) < 0)
      return -1;
  }
  return sink_end (w);
}

int
vb_swriter_zero (struct vb_swriter *w, uint64_t off, uint64_t len)
{
  return sink_zero (w, off, len);
}
