/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The piece cache: a hash table for lookups and a list in use order for
 * eviction, both under one mutex that is never held while decompressing. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/error.h"
#include "view/cache.h"

#define NBUCKETS 4096

struct vb_pentry {
  uint32_t file;
  uint64_t piece;
  size_t len;
  unsigned refs;
  bool cached;                 /* in the table and the use list */
  bool loading;                /* being filled by one thread; wait */
  struct vb_pentry *hnext;     /* bucket chain */
  struct vb_pentry *prev, *next;   /* use order, most recent first */
  unsigned char data[];
};

struct vb_pcache {
  pthread_mutex_t mu;
  pthread_cond_t loaded;       /* a loading entry was filled or dropped */
  size_t max, bytes;
  struct vb_pentry *buckets[NBUCKETS];
  struct vb_pentry *head, *tail;
};

struct vb_pcache *
vb_pcache_new (size_t max_bytes)
{
  struct vb_pcache *c = calloc (1, sizeof *c);

  if (!c) {
    vb_set_error_errno (ENOMEM, "piece cache");
    return NULL;
  }
  pthread_mutex_init (&c->mu, NULL);
  pthread_cond_init (&c->loaded, NULL);
  c->max = max_bytes;
  return c;
}

void
vb_pcache_free (struct vb_pcache *c)
{
  if (!c)
    return;
  for (struct vb_pentry *e = c->head, *n; e; e = n) {
    n = e->next;
    free (e);
  }
  pthread_mutex_destroy (&c->mu);
  pthread_cond_destroy (&c->loaded);
  free (c);
}

static struct vb_pentry **
bucket (struct vb_pcache *c, uint32_t file, uint64_t piece)
{
  uint64_t h = (piece * 0x9E3779B97F4A7C15ull) ^ (file * 0xC2B2AE3D27D4EB4Full);
  return &c->buckets[(h >> 32) % NBUCKETS];
}

static void
unlink_use (struct vb_pcache *c, struct vb_pentry *e)
{
  if (e->prev)
    e->prev->next = e->next;
  else
    c->head = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else
    c->tail = e->prev;
  e->prev = e->next = NULL;
}

static void
push_front (struct vb_pcache *c, struct vb_pentry *e)
{
  e->next = c->head;
  if (c->head)
    c->head->prev = e;
  c->head = e;
  if (!c->tail)
    c->tail = e;
}

static void
drop (struct vb_pcache *c, struct vb_pentry *e)
{
  struct vb_pentry **p = bucket (c, e->file, e->piece);

  while (*p != e)
    p = &(*p)->hnext;
  *p = e->hnext;
  unlink_use (c, e);
  c->bytes -= e->len;
  free (e);
}

/* Unpinned pieces go, least recently used first, until the rest fits. */
static void
evict (struct vb_pcache *c)
{
  struct vb_pentry *e = c->tail, *prev;

  for (; e && c->bytes > c->max; e = prev) {
    prev = e->prev;
    if (!e->refs)
      drop (c, e);
  }
}

static struct vb_pentry *
lookup (struct vb_pcache *c, uint32_t file, uint64_t piece)
{
  for (struct vb_pentry *e = *bucket (c, file, piece); e; e = e->hnext)
    if (e->file == file && e->piece == piece)
      return e;
  return NULL;
}

/* The entry of (FILE, PIECE), pinned, once no thread is filling it; NULL
 * if there is none.  Called and returns with the lock held. */
static struct vb_pentry *
pin_ready (struct vb_pcache *c, uint32_t file, uint64_t piece)
{
  struct vb_pentry *e;

  while ((e = lookup (c, file, piece)) && e->loading)
    pthread_cond_wait (&c->loaded, &c->mu);
  if (e) {
    e->refs++;
    unlink_use (c, e);
    push_front (c, e);
  }
  return e;
}

static void
insert (struct vb_pcache *c, struct vb_pentry *e)
{
  struct vb_pentry **b = bucket (c, e->file, e->piece);

  e->hnext = *b;
  *b = e;
  e->cached = e->loading = true;
  push_front (c, e);
  c->bytes += e->len;
}

/* Fill E (in the table, marked loading) outside the lock, so that other
 * threads wanting the piece wait for this one load instead of repeating
 * it; on failure E goes and they try themselves. */
static struct vb_pentry *
fill (struct vb_pcache *c, struct vb_pentry *e, vb_pcache_load_fn *load,
      void *op)
{
  int r = load (op, e->file, e->piece, e->data);

  pthread_mutex_lock (&c->mu);
  e->loading = false;
  if (r < 0) {
    drop (c, e);
    e = NULL;
  }
  else
    evict (c);
  pthread_cond_broadcast (&c->loaded);
  pthread_mutex_unlock (&c->mu);
  return e;
}

struct vb_pentry *
vb_pcache_get (struct vb_pcache *c, uint32_t file, uint64_t piece,
               size_t len, vb_pcache_load_fn *load, void *op)
{
  struct vb_pentry *e, *fresh;

  pthread_mutex_lock (&c->mu);
  e = pin_ready (c, file, piece);
  pthread_mutex_unlock (&c->mu);
  if (e)
    return e;
  if (!(fresh = calloc (1, sizeof *fresh + len))) {
    vb_set_error_errno (ENOMEM, "a piece of %zu bytes", len);
    return NULL;
  }
  *fresh = (struct vb_pentry) { .file = file, .piece = piece, .len = len,
                                .refs = 1 };
  if (len > c->max) {          /* the caller's alone */
    if (load (op, file, piece, fresh->data) == 0)
      return fresh;
    free (fresh);
    return NULL;
  }
  pthread_mutex_lock (&c->mu);
  if ((e = pin_ready (c, file, piece))) {
    pthread_mutex_unlock (&c->mu);
    free (fresh);
    return e;
  }
  insert (c, fresh);
  pthread_mutex_unlock (&c->mu);
  return fill (c, fresh, load, op);
}

const void *
vb_pentry_data (const struct vb_pentry *e)
{
  return e->data;
}

void
vb_pcache_put (struct vb_pcache *c, struct vb_pentry *e)
{
  if (!e->cached) {
    free (e);
    return;
  }
  pthread_mutex_lock (&c->mu);
  e->refs--;
  if (!e->refs)
    evict (c);
  pthread_mutex_unlock (&c->mu);
}
