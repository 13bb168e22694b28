/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Extent windows: block status of base:allocation, intersected with the
 * dirty bitmap for inc/diff, classified and merged. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "nbd/nbd.h"

#define DEFAULT_WINDOW ((4ULL << 30) - (1ULL << 20))  /* NBD counts are 32-bit */

/* One context's extents of a single block-status reply. */
struct ctxlist {
  uint32_t *e;                 /* pairs: length, flags */
  size_t n;                    /* number of pairs */
};

struct bsreply {
  const char *dirty_ctx;
  bool dirty_zero_is_data;
  struct ctxlist alloc, dirty;
};

static void
ctxlist_free (struct ctxlist *l)
{
  free (l->e);
  l->e = NULL;
  l->n = 0;
}

static int
bs_callback (void *opaque, const char *ctx, uint64_t off, uint32_t *entries,
             size_t nr, int *error)
{
  struct bsreply *r = opaque;
  struct ctxlist *l;

  if (!strcmp (ctx, LIBNBD_CONTEXT_BASE_ALLOCATION))
    l = &r->alloc;
  else if (r->dirty_ctx && !strcmp (ctx, r->dirty_ctx))
    l = &r->dirty;
  else
    return 0;
  free (l->e);
  l->e = malloc (nr * sizeof *entries);
  if (!l->e) {
    *error = ENOMEM;
    return -1;
  }
  memcpy (l->e, entries, nr * sizeof *entries);
  l->n = nr / 2;
  return 0;
}

static enum vb_ext_type
classify (const struct bsreply *r, uint32_t alloc_flags, uint32_t dirty_flags)
{
  bool has_dirty = r->dirty_ctx != NULL;

  if (has_dirty && !(dirty_flags & 1))
    return VB_EXT_CLEAN;
  if (has_dirty && r->dirty_zero_is_data)
    return VB_EXT_DATA;
  /* Only a range known to read as zero is saved without data; a hole
   * that is not flagged zero is read to be safe. */
  return (alloc_flags & LIBNBD_STATE_ZERO) ? VB_EXT_ZERO : VB_EXT_DATA;
}

static int
push_extent (struct vb_extiter *it, uint64_t off, uint64_t len,
             enum vb_ext_type type)
{
  struct vb_extent *last = it->nbuf ? &it->buf[it->nbuf - 1] : NULL;

  if (last && last->type == type && last->off + last->len == off) {
    last->len += len;
    return 0;
  }
  if (it->nbuf == it->capbuf) {
    size_t cap = it->capbuf ? it->capbuf * 2 : 64;
    struct vb_extent *b = realloc (it->buf, cap * sizeof *b);
    if (!b) {
      vb_set_error ("out of memory");
      return -1;
    }
    it->buf = b;
    it->capbuf = cap;
  }
  it->buf[it->nbuf++] = (struct vb_extent) { off, len, type };
  return 0;
}

/* Walk the two context lists in step, emitting intersections, up to the
 * shorter of the two replies.  Returns bytes covered. */
static int64_t
intersect (struct vb_extiter *it, const struct bsreply *r, uint64_t off)
{
  bool dirty = r->dirty_ctx != NULL;
  size_t ia = 0, id = 0;
  uint64_t ra = r->alloc.n ? r->alloc.e[0] : 0;
  uint64_t rd = dirty && r->dirty.n ? r->dirty.e[0] : UINT64_MAX;
  uint64_t pos = off;

  while (ia < r->alloc.n && (!dirty || id < r->dirty.n)) {
    uint64_t step = ra < rd ? ra : rd;
    enum vb_ext_type t = classify (r, r->alloc.e[2 * ia + 1],
                                   dirty ? r->dirty.e[2 * id + 1] : 0);
    if (step == 0)
      break;
    if (push_extent (it, pos, step, t) < 0)
      return -1;
    pos += step;
    ra -= step;
    if (dirty)
      rd -= step;
    if (ra == 0 && ++ia < r->alloc.n)
      ra = r->alloc.e[2 * ia];
    if (dirty && rd == 0 && ++id < r->dirty.n)
      rd = r->dirty.e[2 * id];
  }
  return pos - off;
}

/* Fetch the next window into it->buf. */
static int
fetch_window (struct vb_extiter *it)
{
  struct vb_nbd *n = it->n;
  struct bsreply r = { .dirty_ctx = n->dirty_ctx,
                       .dirty_zero_is_data = n->dirty_zero_is_data };
  uint64_t len = n->size - it->pos;
  int64_t got;

  if (len > it->window)
    len = it->window;
  it->nbuf = it->ibuf = 0;
  if (nbd_block_status (n->h, len, it->pos,
                        (nbd_extent_callback) { .callback = bs_callback,
                                                .user_data = &r }, 0) < 0) {
    vb_set_error ("%s: block status at %" PRIu64 ": %s", n->export, it->pos,
                  nbd_get_error ());
    got = -1;
  }
  else if (!r.alloc.n || (n->dirty_ctx && !r.dirty.n)) {
    vb_set_error ("%s: block status at %" PRIu64 ": server sent no extents",
                  n->export, it->pos);
    got = -1;
  }
  else
    got = intersect (it, &r, it->pos);
  ctxlist_free (&r.alloc);
  ctxlist_free (&r.dirty);
  if (got <= 0)
    return -1;
  /* The server may describe past what we asked; never beyond the disk. */
  it->pos += got;
  if (it->pos > n->size) {
    it->buf[it->nbuf - 1].len -= it->pos - n->size;
    it->pos = n->size;
  }
  return 0;
}

void
vb_extiter_init (struct vb_extiter *it, struct vb_nbd *n, uint64_t window)
{
  memset (it, 0, sizeof *it);
  it->n = n;
  it->window = window ? window : DEFAULT_WINDOW;
}

void
vb_extiter_free (struct vb_extiter *it)
{
  free (it->buf);
  it->buf = NULL;
}

/* Next raw (window-merged) extent: 1, 0 at end, -1 error. */
static int
next_raw (struct vb_extiter *it, struct vb_extent *e)
{
  if (it->ibuf == it->nbuf) {
    if (it->pos >= it->n->size)
      return 0;
    if (fetch_window (it) < 0)
      return -1;
  }
  *e = it->buf[it->ibuf++];
  return 1;
}

int
vb_extiter_next (struct vb_extiter *it, struct vb_extent *e)
{
  struct vb_extent x;
  int r;

  for (;;) {
    r = next_raw (it, &x);
    if (r < 0)
      return -1;
    if (r == 0)
      break;
    if (it->cur.len && x.type == it->cur.type &&
        it->cur.off + it->cur.len == x.off) {
      it->cur.len += x.len;
      continue;
    }
    if (it->cur.len) {
      *e = it->cur;
      it->cur = x;
      return 1;
    }
    it->cur = x;
  }
  if (!it->cur.len)
    return 0;
  *e = it->cur;
  it->cur.len = 0;
  return 1;
}

void
vb_extcache_free (struct vb_extcache *c)
{
  free (c->v);
  c->v = NULL;
  c->n = c->cap = 0;
}

static void
cache_add (struct vb_extcache *c, const struct vb_extent *e)
{
  if (!c || c->overflow)
    return;
  if (c->n == c->cap) {
    size_t cap = c->cap ? 2 * c->cap : 1024;
    struct vb_extent *v = cap <= c->max ? realloc (c->v, cap * sizeof *v) : NULL;
    if (!v) {                  /* too many: the copy asks again */
      c->overflow = true;
      vb_extcache_free (c);
      return;
    }
    c->v = v;
    c->cap = cap;
  }
  c->v[c->n++] = *e;
}

void
vb_extent_totals_add (struct vb_extent_totals *t, const struct vb_extent *e)
{
  if (e->type == VB_EXT_DATA) {
    t->data_bytes += e->len;
    t->data_extents++;
  }
  else if (e->type == VB_EXT_ZERO) {
    t->zero_bytes += e->len;
    t->zero_extents++;
  }
  else
    t->clean_bytes += e->len;
}

int
vb_nbd_totals (struct vb_nbd *n, struct vb_extent_totals *t,
               struct vb_extcache *cache)
{
  struct vb_extiter it;
  struct vb_extent e;
  int r;

  memset (t, 0, sizeof *t);
  vb_extiter_init (&it, n, 0);
  while ((r = vb_extiter_next (&it, &e)) == 1) {
    if (e.type != VB_EXT_CLEAN)
      cache_add (cache, &e);
    vb_extent_totals_add (t, &e);
  }
  vb_extiter_free (&it);
  return r;
}
