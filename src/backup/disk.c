/* SPDX-License-Identifier: GPL-3.0-or-later */
/* One disk: NBD reads -> a sink (the stream writer, or a raw image) ->
 * target file.  This file only orchestrates the copy: the format is the
 * stream writer's (stream/writer.h).
 *
 * On a seekable target the extent map runs ahead of the copy (see
 * nbd/mapper.c) instead of before it.  The stream's first frame holds
 * dataSize, known only when the map ends, so the writer writes the header
 * last, into room sized by this file's estimate (header_data_guess) when
 * the first frame is ready.  A stream target (zip on stdout) cannot seek:
 * it maps first. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backup/disk.h"
#include "common/cleanup.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "stream/writer.h"

/* Extents remembered between the totals pass and the copy: 512 Ki of them
 * (12 MiB); beyond that the copy asks the server again, window by window. */
#define EXTCACHE_MAX (512u * 1024)
/* Extents the map may run ahead of the copy (24 bytes each).  The
 * environment variable VIRTBACK_MAP_QUEUE sets another count (1 to 2^24),
 * which the tests use to hold the map back. */
#define MAP_QUEUE (16u * 1024)

struct disk_run {
  const struct vb_disk_spec *s;
  struct vb_disk_result *r;
  struct vb_tfile *f;
  struct vb_mapper *map;       /* running ahead, or NULL: mapped first */
  struct vb_swriter *w;        /* stream output */
  uint64_t raw_pos;            /* raw output: where the next byte goes */
};


/* ---- the raw image: a sibling of the stream writer ---- */

static int
raw_begin (void *op, uint64_t off, uint64_t len)
{
  ((struct disk_run *) op)->raw_pos = off;
  return 0;
}

static int
raw_data (void *op, const void *buf, size_t len, size_t orig_len)
{
  struct disk_run *d = op;

  __atomic_add_fetch (&d->r->done, orig_len, __ATOMIC_RELAXED);
  if (vb_tfile_pwrite (d->f, buf, len, d->raw_pos) < 0)
    return -1;
  d->raw_pos += len;
  d->r->written += len;
  return 0;
}

static int
raw_end (void *op)
{
  return 0;
}

/* The file is sparse: what is not written reads as zeros. */
static int
raw_zero (void *op, uint64_t off, uint64_t len)
{
  return 0;
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
header_data_guess (void *op, uint64_t *v)
{
  struct disk_run *st = op;
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

static int
write_checksum (struct vb_target *t, const char *file, uint32_t adler)
{
  CLEANUP_FREE char *name = vb_bset_chksum_name (file);
  char val[32];
  int n = snprintf (val, sizeof val, "%lu", (unsigned long) adler);

  return name ? vb_target_put (t, name, val, n) : -1;
}


/* The stream writer as this disk's sink. */
static int
stream_sink (struct disk_run *d, uint64_t data, struct vb_sink *sink)
{
  const struct vb_disk_spec *s = d->s;
  struct vb_swriter_opts wo = {
    .meta = s->meta, .compress = s->compress, .zstd = s->zstd,
    .level = s->level, .workers = s->workers,
    .req_size = s->req_size ? s->req_size : VB_NBD_DEFAULT_REQ,
    .guess = d->map ? header_data_guess : NULL, .guess_op = d,
    .progress = &d->r->done, .cancel = s->cancel, .what = s->disk,
  };

  wo.meta.virtual_size = d->r->virtual_size;
  wo.meta.data_size = data;
  if (!(d->w = vb_swriter_new (d->f, &wo)))
    return -1;
  vb_swriter_sink (d->w, sink);
  return 0;
}

static int
finish_file (struct disk_run *d, uint64_t data)
{
  if (d->s->raw_output)
    return vb_tfile_truncate (d->f, d->r->virtual_size);
  if (vb_swriter_finish (d->w, data) < 0)
    return -1;
  d->r->written = vb_swriter_written (d->w);
  return 0;
}

static int
copy_disk (struct disk_run *d, struct vb_nbd *n,
           const struct vb_extcache *cache)
{
  const struct vb_disk_spec *s = d->s;
  struct vb_sink sink = { .begin_data = raw_begin, .data = raw_data,
                          .end_data = raw_end, .zero = raw_zero, .op = d };
  struct vb_copy_opts co = { s->req_size, s->inflight, s->cancel, cache,
                             d->map };
  struct vb_copy_stats cs;
  struct vb_extent_totals tot;
  /* With the map running ahead the total is still growing (the map
   * thread writes it); it is read from the map when done. */
  uint64_t data = d->map ? 0 : __atomic_load_n (&d->r->total,
                                                __ATOMIC_RELAXED);

  if (!s->raw_output && stream_sink (d, data, &sink) < 0)
    return -1;
  if (vb_nbd_copy (n, &sink, &co, &cs) < 0)
    return -1;
  d->r->data_extents = cs.data_extents;
  d->r->zero_extents = cs.zero_extents;
  if (d->map) {
    if (vb_mapper_totals (d->map, &tot) < 0)
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
  return finish_file (d, data);
}

static struct vb_nbd *
connect_map (const struct vb_disk_spec *s)
{
  struct vb_nbd *n = vb_nbd_connect (s->socket, s->disk, s->dirty_ctx,
                                   s->cancel);

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

/* The map runs ahead when the target lets the header be written last (or
 * there is no header); else the whole disk is mapped first. */
static bool
map_ahead (struct vb_target *t, const struct vb_disk_spec *s)
{
  return s->raw_output || (t->ops->reserve && t->ops->shift);
}

static int
start_map (struct vb_target *t, struct disk_run *st,
           struct vb_extcache *cache)
{
  const struct vb_disk_spec *s = st->s;
  struct vb_nbd *n;

  if (!map_ahead (t, s)) {
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

/* The copy's connections, opened on a thread while the map's connection
 * (or the totals pass) goes on: over TCP, and more so with TLS, each
 * handshake is a round trip or several that need not wait for the map's. */
struct readers {
  const struct vb_disk_spec *s;
  bool reads_only;             /* the map runs ahead: the copy only reads */
  struct vb_nbd *n;
  struct vb_error err;
  pthread_t th;
  bool threaded;
};

/* With the map running ahead, the copy only reads; else it may ask for
 * extents again (when the totals pass kept too many to remember). */
static void *
connect_readers (void *arg)
{
  struct readers *c = arg;
  const struct vb_disk_spec *s = c->s;
  struct vb_nbd *n = c->reads_only ?
    vb_nbd_connect_reads (s->socket, s->disk, s->cancel) : connect_map (s);

  if (n && vb_nbd_add_connections (n, s->socket, s->conns ? s->conns
                                   : vb_nbd_default_conns (s->socket)) < 0) {
    vb_nbd_close (n);
    n = NULL;
  }
  c->n = n;
  if (!n)
    vb_error_save (&c->err);
  return NULL;
}

static void
readers_start (struct readers *c)
{
  c->threaded = pthread_create (&c->th, NULL, connect_readers, c) == 0;
  if (!c->threaded)
    connect_readers (c);
}

/* The connections, or NULL with their error. */
static struct vb_nbd *
readers_join (struct readers *c)
{
  if (c->threaded)
    pthread_join (c->th, NULL);
  c->threaded = false;
  if (!c->n)
    vb_error_restore (&c->err);
  return STEAL (c->n);
}

int
vb_backup_disk (struct vb_target *t, const struct vb_disk_spec *s,
                struct vb_disk_result *r)
{
  struct disk_run st = { .r = r, .s = s };
  struct vb_extcache cache = { .max = EXTCACHE_MAX };
  struct vb_nbd *n = NULL;
  double t0 = vb_mono ();
  int ret = -1;

  struct readers rd = { .s = s, .reads_only = map_ahead (t, s) };

  readers_start (&rd);
  if (start_map (t, &st, &cache) < 0) {
    struct vb_error e;
    vb_error_save (&e);
    vb_nbd_close (readers_join (&rd));
    vb_error_restore (&e);
    goto out;
  }
  if (!(n = readers_join (&rd)) || !(st.f = vb_target_create (t, s->file)))
    goto out;
  if (copy_disk (&st, n, &cache) < 0) {
    vb_tfile_abort (st.f);
    goto out;
  }
  vb_debug ("disk %s: copied, committing", s->disk);
  ret = vb_tfile_commit (st.f);
  if (ret == 0 && !s->raw_output)
    ret = write_checksum (t, s->file, vb_swriter_adler (st.w));
 out:
  if (ret < 0)
    vb_prefix_error ("disk %s", s->disk);
  vb_nbd_close (n);
  vb_mapper_free (st.map);
  vb_swriter_free (st.w);
  vb_extcache_free (&cache);
  r->seconds = vb_mono () - t0;
  r->finished = ret == 0;
  return ret;
}
