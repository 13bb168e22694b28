/* SPDX-License-Identifier: GPL-3.0-or-later */
/* point.c: write one restore point into an NBD writer through the view.
 * See internal.h.
 *
 * Each byte of the point is written once: the view's extents are walked in
 * disk order, and this thread, the only one that touches the writer, cuts
 * the data extents into chunks of one writer buffer.  A few worker threads
 * fill the chunks with vb_view_pread (which decompresses through the
 * view's cache, a piece once however many chunks need it); this thread
 * submits them as they come back.  Chunks never overlap, so their order
 * does not matter.  A chunk that reads as all zeros, and every zero or
 * hole extent, becomes a zeroing, or nothing at all on a fresh image. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "restore/internal.h"
#include "view/view.h"

#define MAX_WORKERS 4
/* The writer lends 16 buffers: the slots hold at most this many. */
#define NSLOTS 6

enum slot_state { S_FREE, S_QUEUED, S_BUSY, S_DONE, S_FAILED };

struct slot {
  enum slot_state state;
  uint64_t off;
  size_t len;
  char *buf;                   /* lent by the writer */
  char msg[1024];              /* S_FAILED: the error */
};

struct pool {
  struct vb_view *v;
  pthread_mutex_t mu;
  pthread_cond_t work, done;
  struct slot slots[NSLOTS];
  bool quit;
};

static void *
worker (void *arg)
{
  struct pool *p = arg;

  pthread_mutex_lock (&p->mu);
  for (;;) {
    struct slot *s = NULL;
    for (size_t i = 0; i < NSLOTS && !s; i++)
      if (p->slots[i].state == S_QUEUED)
        s = &p->slots[i];
    if (!s && p->quit)
      break;
    if (!s) {
      pthread_cond_wait (&p->work, &p->mu);
      continue;
    }
    s->state = S_BUSY;
    pthread_mutex_unlock (&p->mu);
    int r = vb_view_pread (p->v, s->buf, s->len, s->off);
    pthread_mutex_lock (&p->mu);
    if (r < 0)
      snprintf (s->msg, sizeof s->msg, "%s", vb_get_error ());
    s->state = r < 0 ? S_FAILED : S_DONE;
    pthread_cond_broadcast (&p->done);
  }
  pthread_mutex_unlock (&p->mu);
  return NULL;
}

static bool
all_zero (const char *buf, size_t len)
{
  return len == 0 || (buf[0] == 0 && memcmp (buf, buf + 1, len - 1) == 0);
}

struct walk {
  struct vb_nbd_writer *w;
  struct pool *p;
  bool fresh;                  /* the image reads as zeros already */
  struct vb_apply_stats *st;
  uint64_t pos, size;
  size_t busy;                 /* slots not free */
  bool failed;                 /* stop queueing; drain what is out */
};

static int
zero (struct walk *k, uint64_t off, uint64_t len)
{
  k->st->zero += len;
  return k->fresh ? 0 : vb_nbd_writer_zero (k->w, off, len);
}

/* A chunk came back (called with the lock held, which it drops and
 * takes again around the writer). */
static int
take (struct walk *k, struct slot *s)
{
  struct slot c = *s;
  int r = 0;

  s->state = S_FREE;
  k->busy--;
  pthread_mutex_unlock (&k->p->mu);
  if (c.state == S_FAILED) {
    vb_nbd_writer_release (k->w, c.buf);
    vb_set_error_str (c.msg);
    r = -1;
  }
  else if (all_zero (c.buf, c.len)) {
    vb_nbd_writer_release (k->w, c.buf);
    r = zero (k, c.off, c.len);
  }
  else if ((r = vb_nbd_writer_submit (k->w, c.buf, c.len, c.off)) == 0)
    k->st->data += c.len;
  pthread_mutex_lock (&k->p->mu);
  return r;
}

/* Queue the next chunk of data into free slot S, or write the next zero
 * or hole extent; called with the lock held, which it drops meanwhile
 * (workers leave free slots alone). */
static int
step (struct walk *k, struct slot *s)
{
  struct vb_view_extent e;
  struct slot c = { .state = S_QUEUED };
  size_t cap;
  int r = 0;

  pthread_mutex_unlock (&k->p->mu);
  vb_view_extents (k->p->v, k->pos, k->size - k->pos, &e, 1);
  if (e.kind != VB_VIEW_DATA) {
    r = zero (k, e.off, e.len);
    k->pos = e.off + e.len;
    c.state = S_FREE;
  }
  else if (!(c.buf = vb_nbd_writer_buffer (k->w, &cap)))
    r = -1, c.state = S_FREE;
  else {
    c.off = k->pos;
    c.len = e.len < cap ? e.len : cap;
    k->pos += c.len;
  }
  pthread_mutex_lock (&k->p->mu);
  if (c.state == S_QUEUED) {
    *s = c;
    k->busy++;
    pthread_cond_signal (&k->p->work);
  }
  return r;
}

static struct slot *
find (struct pool *p, enum slot_state a, enum slot_state b)
{
  for (size_t i = 0; i < NSLOTS; i++)
    if (p->slots[i].state == a || p->slots[i].state == b)
      return &p->slots[i];
  return NULL;
}

static int
walk (struct walk *k, volatile sig_atomic_t *cancel)
{
  struct pool *p = k->p;
  struct slot *s;
  int ret = 0;

  pthread_mutex_lock (&p->mu);
  while ((k->pos < k->size && !k->failed) || k->busy) {
    if (cancel && __atomic_load_n (cancel, __ATOMIC_RELAXED) && !k->failed) {
      vb_set_error ("interrupted");
      ret = -1, k->failed = true;
    }
    if ((s = find (p, S_DONE, S_FAILED))) {
      if (take (k, s) < 0 && !k->failed)
        ret = -1, k->failed = true;
    }
    else if (!k->failed && k->pos < k->size &&
             (s = find (p, S_FREE, S_FREE))) {
      if (step (k, s) < 0)
        ret = -1, k->failed = true;
    }
    else if (k->busy)
      pthread_cond_wait (&p->done, &p->mu);
  }
  pthread_mutex_unlock (&p->mu);
  return ret;
}

static unsigned
nworkers (void)
{
  long n = sysconf (_SC_NPROCESSORS_ONLN);

  return n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : (unsigned) n;
}

int
vb_write_point (struct vb_nbd_writer *w, struct vb_view *v, bool fresh,
                volatile sig_atomic_t *cancel, struct vb_apply_stats *st)
{
  struct pool p = { .v = v, .mu = PTHREAD_MUTEX_INITIALIZER,
                    .work = PTHREAD_COND_INITIALIZER,
                    .done = PTHREAD_COND_INITIALIZER };
  struct walk k = { w, &p, fresh, st, 0, vb_view_size (v), 0, false };
  pthread_t th[MAX_WORKERS];
  unsigned n = 0, want = nworkers ();
  int ret;

  for (; n < want; n++)
    if (pthread_create (&th[n], NULL, worker, &p) != 0)
      break;
  if (n == 0) {
    vb_set_error ("cannot start the restore's reader threads");
    return -1;
  }
  ret = walk (&k, cancel);
  pthread_mutex_lock (&p.mu);
  p.quit = true;
  pthread_cond_broadcast (&p.work);
  pthread_mutex_unlock (&p.mu);
  for (unsigned i = 0; i < n; i++)
    pthread_join (th[i], NULL);
  return ret;
}
