/* One disk: NBD reads -> stream frames (optionally lz4) -> target file. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libdeflate.h>

#include "backup/disk.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"

/* Extents remembered between the totals pass and the copy: 512 Ki of them
 * (12 MiB); beyond that the copy asks the server again, window by window. */
#define EXTCACHE_MAX (512u * 1024)

struct sink_state {
  struct vb_tfile *f;
  struct vb_disk_result *r;
  const struct vb_disk_spec *s;
  uint32_t adler;                /* of the whole file, for .chksum */
  /* raw output: where the next payload byte goes */
  uint64_t raw_pos;
  /* compression: the current extent's pieces */
  struct vb_zstdc **zs;        /* one per transform worker */
  struct vb_lz4c **lzs;        /* one per transform worker */
  unsigned nworkers;
  uint64_t ext_end, pos, piece_csize;
  uint64_t *sizes;
  size_t nsizes, capsizes;
  uint64_t ext_len;
  struct vb_trailer trailer;
};

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
out (struct sink_state *st, const void *buf, size_t len)
{
  st->adler = libdeflate_adler32 (st->adler, buf, len);
  if (vb_tfile_write (st->f, buf, len) < 0)
    return -1;
  st->r->written += len;
  return 0;
}

static int
out_frame (struct sink_state *st, enum vb_frame_kind k, uint64_t a, uint64_t b)
{
  char hdr[VB_FRAME_LEN];

  vb_frame_format (hdr, k, a, b);
  return out (st, hdr, sizeof hdr);
}

static int
push_size (struct sink_state *st, uint64_t v)
{
  if (st->nsizes == st->capsizes) {
    size_t cap = st->capsizes ? 2 * st->capsizes : 8;
    uint64_t *p = realloc (st->sizes, cap * sizeof *p);
    if (!p) {
      vb_set_error ("out of memory");
      return -1;
    }
    st->sizes = p;
    st->capsizes = cap;
  }
  st->sizes[st->nsizes++] = v;
  return 0;
}

static int
sink_begin (void *op, uint64_t off, uint64_t len)
{
  struct sink_state *st = op;

  if (st->s->raw_output) {
    st->raw_pos = off;
    return 0;
  }
  st->ext_end = off + len;
  st->pos = off;
  st->nsizes = 0;
  st->piece_csize = 0;
  st->ext_len = len;
  return out_frame (st, VB_FRAME_DATA, off, len);
}


/* zstd: each piece is one frame, made by a worker thread. */
static ssize_t
zstd_piece (void *op, unsigned worker, const struct vb_piece *p,
            void *out, size_t outcap)
{
  struct sink_state *st = op;
  struct vb_zstdc *z = st->zs[worker];
  ssize_t a, b, c;

  if ((a = vb_zstdc_begin (z, p->len, out, outcap)) < 0 ||
      (b = vb_zstdc_update (z, p->in, p->len, (char *) out + a,
                            outcap - a)) < 0 ||
      (c = vb_zstdc_end (z, (char *) out + a + b, outcap - a - b)) < 0)
    return -1;
  return a + b + c;
}

/* lz4 (the peer's form): each VB_STREAM_MAX_PIECE span of an extent is one
 * lz4 frame, made by one worker from its pieces in order; different spans
 * are compressed in parallel.  The bytes equal one-shot compression. */
static ssize_t
lz4_piece (void *op, unsigned worker, const struct vb_piece *p,
           void *out, size_t outcap)
{
  struct sink_state *st = op;
  struct vb_lz4c *z = st->lzs[worker];
  char *o = out;
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
lz4_data (struct sink_state *st, const void *buf, size_t len, size_t orig_len)
{
  uint64_t rel;

  if (out (st, buf, len) < 0)
    return -1;
  st->piece_csize += len;
  st->pos += orig_len;
  rel = st->pos - (st->ext_end - st->ext_len);
  if (rel % VB_STREAM_MAX_PIECE && st->pos != st->ext_end)
    return 0;
  if (push_size (st, st->piece_csize) < 0)
    return -1;
  st->piece_csize = 0;
  return 0;
}

static int
sink_data (void *op, const void *buf, size_t len, size_t orig_len)
{
  struct sink_state *st = op;

  __atomic_add_fetch (&st->r->done, orig_len, __ATOMIC_RELAXED);
  if (st->zs)
    return out (st, buf, len) < 0 ? -1 : push_size (st, len);
  if (st->lzs)
    return lz4_data (st, buf, len, orig_len);
  if (st->s->raw_output) {
    if (st->f->t->ops->pwrite (st->f, buf, len, st->raw_pos) < 0)
      return -1;
    st->raw_pos += len;
    st->r->written += len;
    return 0;
  }
  return out (st, buf, len);
}

static int
sink_end (void *op)
{
  struct sink_state *st = op;

  if (st->s->raw_output)
    return 0;
  if (out (st, VB_TERM, VB_TERM_LEN) < 0)
    return -1;
  if (st->zs)
    return vb_trailer_add (&st->trailer, st->sizes, st->nsizes);
  if (!st->lzs)
    return 0;
  return vb_trailer_add_frame (&st->trailer, st->ext_len, st->sizes,
                               st->nsizes);
}

static int
sink_zero (void *op, uint64_t off, uint64_t len)
{
  struct sink_state *st = op;

  if (st->s->raw_output)       /* the raw file is sparse: holes read zero */
    return 0;
  return out_frame (st, VB_FRAME_ZERO, off, len);
}

static int
write_meta (struct sink_state *st, struct vb_meta *m)
{
  size_t len;
  CLEANUP_FREE char *json = vb_meta_to_json (m, &len);

  if (!json)
    return -1;
  if (out_frame (st, VB_FRAME_META, 0, len) < 0 || out (st, json, len) < 0)
    return -1;
  return out (st, VB_TERM, VB_TERM_LEN);
}

static int
write_end (struct sink_state *st)
{
  size_t len;
  CLEANUP_FREE char *json = NULL;

  if (st->s->raw_output)
    return st->f->t->ops->truncate (st->f, st->r->virtual_size);
  if (out_frame (st, VB_FRAME_STOP, 0, 0) < 0)
    return -1;
  if (!st->zs && !st->lzs)
    return 0;
  json = vb_trailer_to_json (&st->trailer, &len);
  if (!json || out (st, json, len) < 0 || out (st, VB_TERM, VB_TERM_LEN) < 0)
    return -1;
  return out_frame (st, VB_FRAME_COMP, 0, len);
}

static int
setup_zstd (struct sink_state *st, struct vb_sink *sink)
{
  const struct vb_disk_spec *s = st->s;
  unsigned n = s->workers ? s->workers : 1;
  size_t req = s->req_size ? s->req_size : VB_NBD_DEFAULT_REQ;

  if (!(st->zs = calloc (n, sizeof *st->zs))) {
    vb_set_error ("out of memory");
    return -1;
  }
  for (unsigned i = 0; i < n; i++)
    if (!(st->zs[i] = vb_zstdc_new (s->level)))
      return -1;
  sink->transform = zstd_piece;
  sink->transform_cap = vb_zstdc_bound (st->zs[0], req);
  sink->workers = n;
  vb_trailer_init (&st->trailer);
  return 0;
}

static int
setup_lz4 (struct sink_state *st, struct vb_sink *sink)
{
  const struct vb_disk_spec *s = st->s;
  unsigned n = s->workers ? s->workers : 1;
  size_t req = s->req_size ? s->req_size : VB_NBD_DEFAULT_REQ;

  if (!(st->lzs = calloc (n, sizeof *st->lzs))) {
    vb_set_error ("out of memory");
    return -1;
  }
  st->nworkers = n;
  for (unsigned i = 0; i < n; i++)
    if (!(st->lzs[i] = vb_lz4c_new (s->level)))
      return -1;
  sink->transform = lz4_piece;
  /* begin and end of a frame may fall into the same piece */
  sink->transform_cap = vb_lz4c_bound (st->lzs[0], req) +
                        2 * vb_lz4c_bound (st->lzs[0], 0);
  sink->workers = n;
  sink->chain_size = VB_STREAM_MAX_PIECE;
  vb_trailer_init (&st->trailer);
  return 0;
}


static void
sink_state_free (struct sink_state *st)
{
  for (unsigned i = 0; st->zs && i < (st->s->workers ? st->s->workers : 1); i++)
    vb_zstdc_free (st->zs[i]);
  free (st->zs);
  for (unsigned i = 0; st->lzs && i < st->nworkers; i++)
    vb_lz4c_free (st->lzs[i]);
  free (st->lzs);
  free (st->sizes);
  if (st->s->compress)
    vb_trailer_clear (&st->trailer);
}

static int
write_checksum (struct vb_target *t, const char *file, uint32_t adler)
{
  char name[4096], val[32];
  int n = snprintf (val, sizeof val, "%lu", (unsigned long) adler);

  snprintf (name, sizeof name, "%s.chksum", file);
  return vb_target_put (t, name, val, n);
}

static int
copy_disk (struct sink_state *st, struct vb_nbd *n,
           const struct vb_extcache *cache)
{
  const struct vb_disk_spec *s = st->s;
  struct vb_sink sink = { .begin_data = sink_begin, .data = sink_data,
                          .end_data = sink_end, .zero = sink_zero, .op = st };
  struct vb_copy_opts co = { s->req_size, s->inflight, s->cancel, cache };
  struct vb_copy_stats cs;
  struct vb_meta m = s->meta;

  m.virtual_size = st->r->virtual_size;
  m.data_size = st->r->total;
  if (s->compress && (s->zstd ? setup_zstd (st, &sink)
                              : setup_lz4 (st, &sink)) < 0)
    return -1;
  if (!s->raw_output && write_meta (st, &m) < 0)
    return -1;
  if (vb_nbd_copy (n, &sink, &co, &cs) < 0)
    return -1;
  st->r->data_extents = cs.data_extents;
  st->r->zero_extents = cs.zero_extents;
  /* The metadata promised dataSize up front; a guest write between the two
   * passes cannot change it (the export is a point-in-time view). */
  if (cs.bytes_read != st->r->total) {
    vb_set_error ("%s: read %" PRIu64 " bytes, expected %" PRIu64,
                  s->disk, cs.bytes_read, st->r->total);
    return -1;
  }
  return write_end (st);
}

static int
estimate (const struct vb_disk_spec *s, struct vb_disk_result *r,
          struct vb_extcache *cache)
{
  struct vb_nbd *n = vb_nbd_connect (s->socket, s->disk, s->dirty_ctx);
  struct vb_extent_totals tot;
  int ret;

  if (!n)
    return -1;
  ret = vb_nbd_totals (n, &tot, cache);
  r->virtual_size = n->size;
  r->total = tot.data_bytes;
  r->data_extents = tot.data_extents;
  r->zero_extents = tot.zero_extents;
  vb_nbd_close (n);
  return ret;
}

int
vb_estimate_disk (const struct vb_disk_spec *s, struct vb_disk_result *r)
{
  return estimate (s, r, NULL);
}

int
vb_backup_disk (struct vb_target *t, const struct vb_disk_spec *s,
                struct vb_disk_result *r)
{
  struct sink_state st = { .r = r, .s = s, .adler = 1 };
  struct vb_extcache cache = { .max = EXTCACHE_MAX };
  struct vb_nbd *n;
  double t0 = now ();
  int ret = -1;

  if (estimate (s, r, &cache) < 0) {
    vb_extcache_free (&cache);
    return -1;
  }
  vb_debug ("disk %s: %" PRIu64 " bytes to read", s->disk, r->total);
  if (!(n = vb_nbd_connect (s->socket, s->disk, s->dirty_ctx)) ||
      vb_nbd_add_connections (n, s->socket, s->conns ? s->conns
                                            : VB_NBD_DEFAULT_CONN) < 0) {
    vb_extcache_free (&cache);
    vb_nbd_close (n);
    return -1;
  }
  if (!(st.f = vb_target_create (t, s->file)))
    goto out;
  if (copy_disk (&st, n, &cache) < 0) {
    vb_tfile_abort (st.f);
    goto out;
  }
  vb_debug ("disk %s: copied, committing", s->disk);
  ret = vb_tfile_commit (st.f);
  if (ret == 0 && !s->raw_output)
    ret = write_checksum (t, s->file, st.adler);
 out:
  if (ret < 0)
    vb_prefix_error ("disk %s", s->disk);
  sink_state_free (&st);
  vb_extcache_free (&cache);
  vb_nbd_close (n);
  r->seconds = now () - t0;
  r->finished = ret == 0;
  return ret;
}
