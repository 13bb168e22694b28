/* One disk: NBD reads -> stream frames (optionally compressed) -> target
 * file.
 *
 * On a seekable target the extent map runs ahead of the copy (see
 * nbd/mapper.c) instead of before it.  The stream's first frame holds
 * dataSize, known only when the map ends, so the header is written last
 * into room kept at the start of the file.  Its length depends only on how
 * many digits dataSize has, so the room is sized when the first frame is
 * ready (header_data_guess); if the true header comes out longer or
 * shorter, the body is moved to fit.  The file is always the one a
 * map-first run writes.  A stream target (zip on stdout) cannot seek: it
 * maps first. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libdeflate.h>
#include <zlib.h>

#include "backup/disk.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"

/* Extents remembered between the totals pass and the copy: 512 Ki of them
 * (12 MiB); beyond that the copy asks the server again, window by window. */
#define EXTCACHE_MAX (512u * 1024)
/* Extents the map may run ahead of the copy (24 bytes each).  The
 * environment variable VIRTBACK_MAP_QUEUE sets another count (1 to 2^24),
 * which the tests use to hold the map back. */
#define MAP_QUEUE (16u * 1024)

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
  /* map running ahead: the header is written last */
  struct vb_mapper *map;
  bool hdr_pending;            /* no room kept for it yet */
  uint64_t hdr_room;           /* bytes kept at the start */
  struct vb_meta meta;         /* all but dataSize */
};

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int reserve_header (struct sink_state *st);

static int
out (struct sink_state *st, const void *buf, size_t len)
{
  if (st->hdr_pending && reserve_header (st) < 0)
    return -1;
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

/* The whole first frame for dataSize DATA: header, JSON, CR LF. */
static char *
meta_frame (const struct sink_state *st, uint64_t data, size_t *len)
{
  struct vb_meta m = st->meta;
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

static int
write_meta (struct sink_state *st, uint64_t data)
{
  size_t len;
  CLEANUP_FREE char *b = meta_frame (st, data, &len);

  return b ? out (st, b, len) : -1;
}

static unsigned
digits (uint64_t v)
{
  unsigned n = 1;

  while (v >= 10) {
    v /= 10;
    n++;
  }
  return n;
}

/* A dataSize to size the header's room by, when the first frame is
 * ready.  Exact when the map is done or when the data mapped so far and
 * that plus the whole unmapped rest have as many digits.  Else the map's
 * density carried over the rest, when that is at least a factor of 1.5
 * away from another number of digits: on a big disk that is slow to map,
 * the copy then starts at once, and an estimate that still misses costs a
 * move of the file at the end.  Nearer the edge, the map counts the rest
 * of the disk first (a map-first run, for this disk). */
static int
header_data_guess (struct sink_state *st, uint64_t *v)
{
  struct vb_map_state ms;
  uint64_t hi, est;

  vb_mapper_settle (st->map, &ms);
  *v = ms.data_bytes;
  hi = ms.data_bytes + (ms.size - ms.mapped);
  if (ms.done || digits (ms.data_bytes) == digits (hi))
    return 0;
  est = vb_map_estimate (&ms);
  if (est > 0 && digits (est / 3 * 2 > *v ? est / 3 * 2 : *v) ==
      digits (est / 2 * 3 < hi ? est / 2 * 3 : hi)) {
    *v = est;
    return 0;
  }
  vb_debug ("disk %s: mapped to %" PRIu64 " of %" PRIu64 ", counting the "
            "rest for the header", st->s->disk, ms.mapped, ms.size);
  return vb_mapper_count (st->map, v);
}

/* The first frame is ready while the map may still run: keep room for
 * the header. */
static int
reserve_header (struct sink_state *st)
{
  uint64_t v;
  size_t len;
  CLEANUP_FREE char *b = NULL;

  st->hdr_pending = false;
  if (header_data_guess (st, &v) < 0 || !(b = meta_frame (st, v, &len)))
    return -1;
  st->hdr_room = len;
  return st->f->t->ops->reserve (st->f, len);
}

/* The map is done: write the true header into the room kept for it. */
static int
finish_header (struct sink_state *st, uint64_t data)
{
  uint64_t body = st->r->written;
  size_t len;
  CLEANUP_FREE char *b = meta_frame (st, data, &len);

  if (!b)
    return -1;
  if (len != st->hdr_room) {
    vb_info ("disk %s: the data size was %" PRIu64 " bytes, more digits or "
             "fewer than estimated: moving the %" PRIu64 " bytes written to "
             "fit the header", st->s->disk, data, body);
    if (st->f->t->ops->shift (st->f, st->hdr_room, len, st->s->cancel) < 0)
      return -1;
  }
  if (st->f->t->ops->pwrite (st->f, b, len, 0) < 0)
    return -1;
  st->adler = adler32_combine64 (adler32 (1, (const Bytef *) b, len),
                                 st->adler, body);
  st->r->written += len;
  return 0;
}

static int
write_trailer (struct sink_state *st)
{
  size_t len;
  CLEANUP_FREE char *json = NULL;

  if (!st->zs && !st->lzs)
    return 0;
  json = vb_trailer_to_json (&st->trailer, &len);
  if (!json || out (st, json, len) < 0 || out (st, VB_TERM, VB_TERM_LEN) < 0)
    return -1;
  return out_frame (st, VB_FRAME_COMP, 0, len);
}

static int
write_end (struct sink_state *st, uint64_t data)
{
  if (st->s->raw_output)
    return st->f->t->ops->truncate (st->f, st->r->virtual_size);
  if (out_frame (st, VB_FRAME_STOP, 0, 0) < 0 || write_trailer (st) < 0)
    return -1;
  return st->map ? finish_header (st, data) : 0;
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
  struct vb_copy_opts co = { s->req_size, s->inflight, s->cancel, cache,
                             st->map };
  struct vb_copy_stats cs;
  struct vb_extent_totals tot;
  /* With the map running ahead the total is still growing (the map
   * thread writes it); it is read from the map when done. */
  uint64_t data = st->map ? 0 : __atomic_load_n (&st->r->total,
                                                 __ATOMIC_RELAXED);

  st->meta = s->meta;
  st->meta.virtual_size = st->r->virtual_size;
  if (s->compress && (s->zstd ? setup_zstd (st, &sink)
                              : setup_lz4 (st, &sink)) < 0)
    return -1;
  st->hdr_pending = st->map && !s->raw_output;
  if (!st->map && !s->raw_output && write_meta (st, data) < 0)
    return -1;
  if (vb_nbd_copy (n, &sink, &co, &cs) < 0)
    return -1;
  st->r->data_extents = cs.data_extents;
  st->r->zero_extents = cs.zero_extents;
  if (st->map) {
    if (vb_mapper_totals (st->map, &tot) < 0)
      return -1;
    data = tot.data_bytes;
  }
  /* dataSize is what the map found; a guest write between map and read
   * cannot change it (the export is a point-in-time view). */
  if (cs.bytes_read != data) {
    vb_set_error ("%s: read %" PRIu64 " bytes, expected %" PRIu64,
                  s->disk, cs.bytes_read, data);
    return -1;
  }
  return write_end (st, data);
}

/* A connection that maps the disk, classifying as this backup must. */
static struct vb_nbd *
connect_map (const struct vb_disk_spec *s)
{
  struct vb_nbd *n = vb_nbd_connect (s->socket, s->disk, s->dirty_ctx);

  if (n)
    n->dirty_zero_is_data = s->peer_compatible;
  return n;
}

static int
estimate (const struct vb_disk_spec *s, struct vb_disk_result *r,
          struct vb_extcache *cache)
{
  struct vb_nbd *n = connect_map (s);
  struct vb_extent_totals tot;
  int ret;

  if (!n)
    return -1;
  ret = vb_nbd_totals (n, &tot, cache);
  r->virtual_size = n->size;
  __atomic_store_n (&r->total, tot.data_bytes, __ATOMIC_RELAXED);
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

static size_t
map_queue (void)
{
  const char *v = getenv ("VIRTBACK_MAP_QUEUE");
  char *end;
  unsigned long n = v ? strtoul (v, &end, 10) : 0;

  if (!v || !*v || *end || n == 0 || n > (1ul << 24)) {
    if (v)
      vb_warn ("VIRTBACK_MAP_QUEUE=%s is not 1 to 16777216; using %u",
               v, MAP_QUEUE);
    return MAP_QUEUE;
  }
  return n;
}

/* Start the map on a connection of its own, when the target lets the
 * header be written last; else map the whole disk first. */
static int
start_map (struct vb_target *t, struct sink_state *st,
           struct vb_extcache *cache)
{
  const struct vb_disk_spec *s = st->s;
  struct vb_nbd *n;

  if (!s->raw_output && !(t->ops->reserve && t->ops->shift)) {
    if (estimate (s, st->r, cache) < 0)
      return -1;
    vb_debug ("disk %s: %" PRIu64 " bytes to read", s->disk, st->r->total);
    return 0;
  }
  if (!(n = connect_map (s)))
    return -1;
  st->r->virtual_size = n->size;
  st->map = vb_mapper_start (n, map_queue (), s->cancel, &st->r->total);
  return st->map ? 0 : -1;
}

/* With the map running ahead, the copy only reads; else it may ask for
 * extents again (when the totals pass kept too many to remember). */
static struct vb_nbd *
connect_readers (const struct vb_disk_spec *s, bool reads_only)
{
  struct vb_nbd *n = reads_only ? vb_nbd_connect_reads (s->socket, s->disk)
                     : connect_map (s);

  if (n && vb_nbd_add_connections (n, s->socket, s->conns ? s->conns
                                   : VB_NBD_DEFAULT_CONN) < 0) {
    vb_nbd_close (n);
    return NULL;
  }
  return n;
}

int
vb_backup_disk (struct vb_target *t, const struct vb_disk_spec *s,
                struct vb_disk_result *r)
{
  struct sink_state st = { .r = r, .s = s, .adler = 1 };
  struct vb_extcache cache = { .max = EXTCACHE_MAX };
  struct vb_nbd *n = NULL;
  double t0 = now ();
  int ret = -1;

  if (start_map (t, &st, &cache) < 0 ||
      !(n = connect_readers (s, st.map != NULL)) ||
      !(st.f = vb_target_create (t, s->file)))
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
  vb_nbd_close (n);
  vb_mapper_free (st.map);
  sink_state_free (&st);
  vb_extcache_free (&cache);
  r->seconds = now () - t0;
  r->finished = ret == 0;
  return ret;
}
