/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The extent map, run ahead of the copy.  A thread walks the disk's block
 * status on a connection of its own and queues extents for the copy, so
 * the queries overlap the reads instead of preceding them: on a big or
 * slow-to-map disk the first bytes are read at once, where virtnbdbackup
 * maps the whole disk first (its upstream issue 263).  The queue is
 * bounded, so memory does not grow with the disk; a full queue parks the
 * map until the copy catches up.
 *
 * When the stream's header needs the data total before the copy may go on
 * (vb_mapper_count), a parked map counts the rest of the disk without
 * queueing it, then maps again from where the queue stopped: a second
 * pass over the rest, as a map-first run would make, but only then. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "nbd/nbd.h"

struct vb_mapper {
  struct vb_nbd *n;            /* owned; the map's own connection */
  pthread_t th;
  bool started;
  pthread_mutex_t mu;
  pthread_cond_t cv;           /* room in the queue, progress, or the end */
  struct vb_extent *q;         /* ring of CAP extents */
  size_t cap, head, count;
  bool done, stop, parked;     /* parked: waiting for room in the queue */
  bool failed;                 /* done, but not at the end of the disk */
  char err[512];
  bool count_req, counted;     /* vb_mapper_count asked; the total known */
  uint64_t count_total;        /* data bytes of the whole disk */
  int wake_fd;                 /* the consumer's eventfd, or -1 */
  struct vb_extent_totals tot;
  uint64_t mapped;             /* the disk is mapped up to here */
  uint64_t *live_total;        /* data bytes so far, for progress */
  volatile sig_atomic_t *cancel;
};

static void
wake (struct vb_mapper *m)
{
  uint64_t one = 1;

  if (m->wake_fd >= 0 && write (m->wake_fd, &one, sizeof one) < 0) {
    /* An eventfd counter does not overflow here; nothing to do. */
  }
}

/* Queue E (CLEAN ranges are counted, not queued: the copy skips them).
 * Returns 1 when queued, 0 when the map is told to stop, 2 when the queue
 * is full and the total is asked for (E not queued). */
static int
push (struct vb_mapper *m, const struct vb_extent *e)
{
  int ok;

  pthread_mutex_lock (&m->mu);
  while (e->type != VB_EXT_CLEAN && m->count == m->cap && !m->stop &&
         !(m->count_req && !m->counted)) {
    m->parked = true;
    pthread_cond_broadcast (&m->cv);
    pthread_cond_wait (&m->cv, &m->mu);
  }
  m->parked = false;
  ok = m->stop ? 0 : e->type != VB_EXT_CLEAN && m->count == m->cap ? 2 : 1;
  if (ok == 1) {
    if (e->type != VB_EXT_CLEAN)
      m->q[(m->head + m->count++) % m->cap] = *e;
    vb_extent_totals_add (&m->tot, e);
    m->mapped = e->off + e->len;
    if (m->live_total)
      __atomic_store_n (m->live_total, m->tot.data_bytes, __ATOMIC_RELAXED);
    if (m->count == 1)
      wake (m);
  }
  pthread_mutex_unlock (&m->mu);
  return ok;
}

static bool
cancelled (struct vb_mapper *m)
{
  return m->cancel && __atomic_load_n (m->cancel, __ATOMIC_RELAXED);
}

/* The queue is full at E: count E and the rest of the disk, then set IT
 * to map again from E. */
static int
count_rest (struct vb_mapper *m, struct vb_extiter *it,
            const struct vb_extent *e)
{
  struct vb_extent_totals rest = { 0 };
  struct vb_extent x = *e;
  uint64_t resume = e->off;
  int r = 1;

  do
    vb_extent_totals_add (&rest, &x);
  while (!cancelled (m) && (r = vb_extiter_next (it, &x)) == 1);
  if (r < 0 || cancelled (m))
    return -1;
  pthread_mutex_lock (&m->mu);
  m->count_total = m->tot.data_bytes + rest.data_bytes;
  m->counted = true;
  pthread_cond_broadcast (&m->cv);
  pthread_mutex_unlock (&m->mu);
  vb_extiter_free (it);
  vb_extiter_init (it, m->n, 0);
  it->pos = resume;
  return 0;
}

static void *
map_thread (void *arg)
{
  struct vb_mapper *m = arg;
  struct vb_extiter it;
  struct vb_extent e;
  int r = 0, p;

  vb_extiter_init (&it, m->n, 0);
  while (!cancelled (m) && (r = vb_extiter_next (&it, &e)) == 1) {
    if ((p = push (m, &e)) == 0)
      break;
    if (p == 2 && (r = count_rest (m, &it, &e)) < 0)
      break;
  }
  pthread_mutex_lock (&m->mu);
  if (cancelled (m))
    vb_set_error ("%s: interrupted", m->n->export);
  m->failed = cancelled (m) || r < 0 || m->stop;
  if (m->failed)
    snprintf (m->err, sizeof m->err, "%s", vb_get_error ());
  m->done = true;
  pthread_cond_broadcast (&m->cv);
  wake (m);
  pthread_mutex_unlock (&m->mu);
  vb_extiter_free (&it);
  return NULL;
}

struct vb_mapper *
vb_mapper_start (struct vb_nbd *n, size_t cap, volatile sig_atomic_t *cancel,
                 uint64_t *live_total)
{
  struct vb_mapper *m = calloc (1, sizeof *m);

  if (!m || !(m->q = calloc (cap ? cap : 1, sizeof *m->q))) {
    free (m);
    vb_nbd_close (n);
    vb_set_error ("out of memory");
    return NULL;
  }
  m->n = n;
  m->cap = cap ? cap : 1;
  m->wake_fd = -1;
  m->cancel = cancel;
  m->live_total = live_total;
  pthread_mutex_init (&m->mu, NULL);
  pthread_cond_init (&m->cv, NULL);
  if (pthread_create (&m->th, NULL, map_thread, m) != 0) {
    vb_set_error ("%s: cannot start the map thread", n->export);
    vb_mapper_free (m);
    return NULL;
  }
  m->started = true;
  return m;
}

void
vb_mapper_set_wake (struct vb_mapper *m, int fd)
{
  pthread_mutex_lock (&m->mu);
  m->wake_fd = fd;
  pthread_mutex_unlock (&m->mu);
}

int
vb_mapper_next (struct vb_mapper *m, struct vb_extent *e)
{
  int r;

  pthread_mutex_lock (&m->mu);
  if (m->count) {
    *e = m->q[m->head];
    m->head = (m->head + 1) % m->cap;
    m->count--;
    /* The map has room now: until it fills the queue again it is not
     * parked, so vb_mapper_settle waits for it instead of reading a map
     * state one extent old. */
    m->parked = false;
    pthread_cond_broadcast (&m->cv);
    r = 1;
  }
  else if (!m->done)
    r = 2;
  else if (m->failed) {
    vb_set_error_str (m->err);
    r = -1;
  }
  else
    r = 0;
  pthread_mutex_unlock (&m->mu);
  return r;
}

void
vb_mapper_settle (struct vb_mapper *m, struct vb_map_state *st)
{
  pthread_mutex_lock (&m->mu);
  while (!m->done && !m->parked)
    pthread_cond_wait (&m->cv, &m->mu);
  st->done = m->done && !m->failed;
  st->mapped = m->mapped;
  st->size = m->n->size;
  st->data_bytes = m->tot.data_bytes;
  pthread_mutex_unlock (&m->mu);
}

uint64_t
vb_map_estimate (const struct vb_map_state *st)
{
  long double rest;

  if (st->done || st->mapped == 0 || st->mapped >= st->size)
    return st->data_bytes;
  rest = (long double) st->data_bytes * (st->size - st->mapped) / st->mapped;
  return st->data_bytes + (uint64_t) rest;
}

int
vb_mapper_count (struct vb_mapper *m, uint64_t *data)
{
  int r = 0;

  pthread_mutex_lock (&m->mu);
  m->count_req = true;
  pthread_cond_broadcast (&m->cv);
  while (!m->done && !m->counted)
    pthread_cond_wait (&m->cv, &m->mu);
  if (m->counted)
    *data = m->count_total;
  else if (!m->failed)
    *data = m->tot.data_bytes;
  else {
    vb_set_error_str (m->err);
    r = -1;
  }
  pthread_mutex_unlock (&m->mu);
  return r;
}

int
vb_mapper_totals (struct vb_mapper *m, struct vb_extent_totals *t)
{
  int r = 0;

  pthread_mutex_lock (&m->mu);
  if (!m->done || m->failed) {
    vb_set_error_str (m->done ? m->err : "the extent map is not finished");
    r = -1;
  }
  else
    *t = m->tot;
  pthread_mutex_unlock (&m->mu);
  return r;
}

void
vb_mapper_free (struct vb_mapper *m)
{
  if (!m)
    return;
  pthread_mutex_lock (&m->mu);
  m->stop = true;
  m->wake_fd = -1;
  pthread_cond_broadcast (&m->cv);
  pthread_mutex_unlock (&m->mu);
  if (m->started)
    pthread_join (m->th, NULL);
  pthread_mutex_destroy (&m->mu);
  pthread_cond_destroy (&m->cv);
  vb_nbd_close (m->n);
  free (m->q);
  free (m);
}
