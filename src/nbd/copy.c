/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The asynchronous copy engine.  This thread keeps many NBD reads in
 * flight on one connection; a writer thread hands finished pieces to the
 * sink strictly in disk order.  Separating the two keeps the socket
 * drained while the sink blocks in write(), so QEMU never idles. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <libnbd.h>

#include "common/error.h"
#include "nbd/nbd.h"

#define DEFAULT_REQ VB_NBD_DEFAULT_REQ
#define DEFAULT_INFLIGHT VB_NBD_DEFAULT_INFLIGHT
#define VB_MAX_WORKERS 64

/* Slot life: FREE -> BUSY (read issued) -> DONE (reply in) -> [XFORM (a
 * worker transforms it) ->] READY -> FREE (sunk, in order).
 * The ring, the states and the flags below are guarded by mu. */
enum slot_state { SLOT_FREE, SLOT_BUSY, SLOT_DONE, SLOT_XFORM, SLOT_READY };

struct slot {
  enum slot_state state;
  int err;                     /* errno from the completion */
  enum vb_ext_type type;
  uint64_t off, len;           /* this piece (or the whole ZERO extent) */
  uint64_t ext_off, ext_len;   /* the DATA extent the piece belongs to */
  bool first, last;
  char *buf;
  char *out;                   /* transform output, when the sink has one */
  uint64_t chain;              /* chain number (sink->chain_size) */
  bool chain_first, chain_last;
  uint64_t chain_len;
  ssize_t outlen;
  struct copy *c;
};

struct copy {
  struct vb_nbd *n;
  const struct vb_sink *sink;
  struct vb_copy_stats *st;
  const struct vb_copy_opts *o;
  struct vb_extiter it;
  struct vb_extent ext;        /* extent being cut into pieces */
  uint64_t pos;                /* next offset inside ext */
  bool have_ext, eof;
  uint32_t req;
  unsigned nslots, head, tail, used;
  struct slot *slots;
  pthread_mutex_t mu;
  /* Separate waits, so an event wakes only the thread that can act on it:
   * every broadcast to everyone cost a tenth of our CPU in wakeups. */
  pthread_cond_t wcv;          /* writer: the head slot is ready, or the end */
  pthread_cond_t xcv;          /* workers: a slot is done, or the end */
  int efd;                     /* writer -> reader: a slot was freed */
  bool reader_done, failed;
  struct vb_error werr;        /* the writer's (or a worker's) error */
  bool have_werr;
  bool xform;                  /* the sink transforms pieces */
  uint64_t nchains;            /* chains started so far */
  size_t icache;               /* next extent in o->cache */
  unsigned next_worker, nworkers;
};

/* Call with mu held after S changed state. */
static void
kick (struct copy *c, struct slot *s)
{
  if (s->state == SLOT_DONE)
    pthread_cond_broadcast (&c->xcv);   /* chains: only one worker may take it */
  else if (s->state == SLOT_READY && s == &c->slots[c->head])
    pthread_cond_signal (&c->wcv);
}

/* Call with mu held: failure or the end concerns every thread. */
static void
kick_all (struct copy *c)
{
  pthread_cond_broadcast (&c->wcv);
  pthread_cond_broadcast (&c->xcv);
}

static int
read_done (void *opaque, int *error)
{
  struct slot *s = opaque;
  struct copy *c = s->c;

  pthread_mutex_lock (&c->mu);
  s->err = *error;
  s->state = c->xform && !s->err ? SLOT_DONE : SLOT_READY;
  kick (c, s);
  pthread_mutex_unlock (&c->mu);
  return 1;
}

/* From the map running ahead (2: not mapped yet), else the cache of the
 * totals pass when there is one, else windows. */
static int
next_extent (struct copy *c)
{
  const struct vb_extcache *k = c->o ? c->o->cache : NULL;

  if (c->o && c->o->mapper)
    return vb_mapper_next (c->o->mapper, &c->ext);
  if (!k || k->overflow)
    return vb_extiter_next (&c->it, &c->ext);
  if (c->icache == k->n)
    return 0;
  c->ext = k->v[c->icache++];
  return 1;
}

/* Chains: CHAIN_SIZE spans of an extent (req divides it, so pieces never
 * straddle two chains). */
static void
mark_chain (struct copy *c, struct slot *s, uint64_t rel)
{
  uint64_t cs = c->sink->chain_size;

  if (!cs) {
    s->chain = c->nchains++;
    return;
  }
  s->chain_first = rel % cs == 0;
  if (s->chain_first)
    c->nchains++;
  s->chain = c->nchains - 1;
  s->chain_len = c->ext.len - rel / cs * cs < cs ? c->ext.len - rel / cs * cs
                                                 : cs;
  s->chain_last = (rel + s->len) % cs == 0 || rel + s->len == c->ext.len;
}

/* Cut the next piece off the current extent, fetching extents as needed.
 * Returns 1 with *S filled (buffer untouched), 2 if the map has not got
 * this far yet, 0 at end, -1 error. */
static int
next_piece (struct copy *c, struct slot *s)
{
  while (!c->have_ext || c->pos == c->ext.off + c->ext.len) {
    int r = next_extent (c);
    if (r <= 0 || r == 2)
      return r;
    c->have_ext = true;
    c->pos = c->ext.off;
    if (c->ext.type == VB_EXT_CLEAN)
      c->pos += c->ext.len;    /* not part of this backup */
  }
  s->type = c->ext.type;
  s->ext_off = c->ext.off;
  s->ext_len = c->ext.len;
  s->off = c->pos;
  s->first = c->pos == c->ext.off;
  if (c->ext.type == VB_EXT_ZERO)
    s->len = c->ext.len;
  else {
    uint64_t rel = c->pos - c->ext.off;
    uint64_t stop = (rel / c->req + 1) * c->req;   /* next req boundary */
    if (stop > c->ext.len)
      stop = c->ext.len;
    s->len = stop - rel;
    mark_chain (c, s, rel);
  }
  c->pos += s->len;
  s->last = c->pos == c->ext.off + c->ext.len;
  return 1;
}


static void
fail (struct copy *c)
{
  pthread_mutex_lock (&c->mu);
  c->failed = true;
  kick_all (c);
  pthread_mutex_unlock (&c->mu);
}

static int
issue (struct copy *c, struct slot *s)
{
  if (s->type == VB_EXT_ZERO) {
    s->err = 0;
    s->state = SLOT_READY;
    return 0;
  }
  s->state = SLOT_BUSY;
  if (nbd_aio_pread (c->n->rh[c->st->requests % c->n->nconn], s->buf,
                     s->len, s->off,
                     (nbd_completion_callback) { .callback = read_done,
                                                 .user_data = s }, 0) < 0) {
    vb_set_error_code (VB_ERR_NBD_READ, nbd_get_errno (), "%s: read at %"
                       PRIu64 ": %s", c->n->export, s->off, nbd_get_error ());
    s->state = SLOT_FREE;
    return -1;
  }
  c->st->requests++;
  return 0;
}

/* Issue reads into free slots.  Never holds mu across libnbd calls: reply
 * callbacks run inside them and take mu. */
static int
fill (struct copy *c)
{
  while (!c->eof) {
    struct slot *s = &c->slots[c->tail];
    bool room;
    int r;

    pthread_mutex_lock (&c->mu);
    room = c->used < c->nslots && !c->failed;
    pthread_mutex_unlock (&c->mu);
    if (!room)
      return 0;
    if ((r = next_piece (c, s)) == 2)
      return 0;                /* the map wakes the poll when it has more */
    if (r < 0 || (r > 0 && issue (c, s) < 0))
      return -1;
    pthread_mutex_lock (&c->mu);
    if (r == 0) {
      c->eof = c->reader_done = true;
      kick_all (c);
    }
    else {
      c->tail = (c->tail + 1) % c->nslots;
      c->used++;
      kick (c, s);
    }
    pthread_mutex_unlock (&c->mu);
  }
  return 0;
}

static int
emit (struct copy *c, struct slot *s)
{
  const struct vb_sink *k = c->sink;

  if (s->err) {
    vb_set_error_code (VB_ERR_NBD_READ, s->err, "%s: read at %" PRIu64 ": %s",
                       c->n->export, s->off, strerror (s->err));
    return -1;
  }
  if (s->type == VB_EXT_ZERO) {
    c->st->zero_extents++;
    return k->zero (k->op, s->off, s->len);
  }
  if (s->first) {
    c->st->data_extents++;
    if (k->begin_data (k->op, s->ext_off, s->ext_len) < 0)
      return -1;
  }
  c->st->bytes_read += s->len;
  if (c->xform ? k->data (k->op, s->out, s->outlen, s->len) < 0
               : k->data (k->op, s->buf, s->len, s->len) < 0)
    return -1;
  return s->last ? k->end_data (k->op) : 0;
}

static void
wake_reader (struct copy *c)
{
  uint64_t one = 1;

  if (write (c->efd, &one, sizeof one) < 0) {
    /* The counter cannot overflow here; nothing to do. */
  }
}

/* The writer thread: sink the slot at the head as soon as it is done. */
static void *
writer (void *arg)
{
  struct copy *c = arg;

  pthread_mutex_lock (&c->mu);
  for (;;) {
    while (!c->failed && (c->used == 0 ||
                          c->slots[c->head].state != SLOT_READY)) {
      if (c->used == 0 && c->reader_done)
        goto out;
      pthread_cond_wait (&c->wcv, &c->mu);
    }
    if (c->failed)
      break;
    struct slot *s = &c->slots[c->head];
    pthread_mutex_unlock (&c->mu);
    int r = emit (c, s);
    pthread_mutex_lock (&c->mu);
    if (r < 0) {
      if (!c->have_werr)
        vb_error_save (&c->werr), c->have_werr = true;
      c->failed = true;
      break;
    }
    s->state = SLOT_FREE;
    c->head = (c->head + 1) % c->nslots;
    c->used--;
    if (c->used == 0 && c->reader_done)
      pthread_cond_broadcast (&c->xcv);   /* idle workers are done */
    pthread_mutex_unlock (&c->mu);
    wake_reader (c);
    pthread_mutex_lock (&c->mu);
  }
 out:
  kick_all (c);
  pthread_mutex_unlock (&c->mu);
  wake_reader (c);
  return NULL;
}

/* The oldest slot worker ID may transform now, or NULL.  With chains a
 * worker owns every chain N with N % workers == ID and must take its
 * slots in order: a slot of its own still being read blocks it. */
static struct slot *
next_done (struct copy *c, unsigned id)
{
  bool chained = c->sink->chain_size != 0;

  for (unsigned i = 0; i < c->used; i++) {
    struct slot *s = &c->slots[(c->head + i) % c->nslots];
    if (s->type != VB_EXT_DATA ||
        (chained && s->chain % c->nworkers != id))
      continue;
    if (s->state == SLOT_DONE)
      return s;
    if (chained && s->state == SLOT_BUSY)
      return NULL;
  }
  return NULL;
}

/* A transform worker: takes done slots in any order. */
static void *
worker (void *arg)
{
  struct copy *c = arg;
  const struct vb_sink *k = c->sink;
  unsigned id;
  struct slot *s = NULL;

  pthread_mutex_lock (&c->mu);
  id = c->next_worker++;
  for (;;) {
    while (!c->failed && !(s = next_done (c, id)) &&
           !(c->reader_done && c->used == 0))
      pthread_cond_wait (&c->xcv, &c->mu);
    if (c->failed || !s)
      break;
    s->state = SLOT_XFORM;
    pthread_mutex_unlock (&c->mu);
    struct vb_piece pc = { s->buf, s->len, s->chain_first, s->chain_last,
                           s->chain_len };
    s->outlen = k->transform (k->op, id, &pc, s->out, k->transform_cap);
    pthread_mutex_lock (&c->mu);
    if (s->outlen < 0) {
      if (!c->have_werr)
        vb_error_save (&c->werr), c->have_werr = true;
      c->failed = true;
      kick_all (c);
      break;
    }
    s->state = SLOT_READY;
    kick (c, s);
  }
  pthread_mutex_unlock (&c->mu);
  wake_reader (c);
  return NULL;
}

/* Wait for NBD traffic on any connection, or for the writer to free a
 * slot. */
static int
wait_events (struct copy *c)
{
  struct pollfd p[VB_NBD_MAXCONN + 1] = { { .fd = c->efd, .events = POLLIN } };
  unsigned n = c->n->nconn;
  uint64_t junk;

  for (unsigned i = 0; i < n; i++) {
    unsigned dir = nbd_aio_get_direction (c->n->rh[i]);
    p[i + 1].fd = nbd_aio_get_fd (c->n->rh[i]);
    p[i + 1].events = (dir & LIBNBD_AIO_DIRECTION_READ ? POLLIN : 0) |
                      (dir & LIBNBD_AIO_DIRECTION_WRITE ? POLLOUT : 0);
  }
  if (poll (p, n + 1, 200) < 0 && errno != EINTR) {
    vb_set_error_errno (errno, "poll");
    return -1;
  }
  if (p[0].revents & POLLIN && read (c->efd, &junk, sizeof junk) < 0) {
    /* Nonblocking eventfd already drained: fine. */
  }
  for (unsigned i = 0; i < n; i++) {
    struct nbd_handle *h = c->n->rh[i];
    short rv = p[i + 1].revents;
    if ((rv & (POLLIN | POLLHUP | POLLERR) && nbd_aio_notify_read (h) < 0) ||
        (rv & POLLOUT && nbd_aio_notify_write (h) < 0)) {
      vb_set_error ("%s: %s", c->n->export, nbd_get_error ());
      return -1;
    }
  }
  return 0;
}

static bool
finished (struct copy *c)
{
  bool done;

  pthread_mutex_lock (&c->mu);
  done = c->failed || (c->reader_done && c->used == 0);
  pthread_mutex_unlock (&c->mu);
  return done;
}

static int
reader_loop (struct copy *c)
{
  while (!finished (c)) {
    if (c->o && c->o->cancel &&
        __atomic_load_n (c->o->cancel, __ATOMIC_RELAXED)) {
      vb_set_error ("%s: interrupted", c->n->export);
      return -1;
    }
    if (fill (c) < 0 || wait_events (c) < 0)
      return -1;
  }
  return 0;
}

/* Wait for reads still in flight so no callback touches freed slots. */
static void
settle (struct copy *c)
{
  for (unsigned i = 0; i < c->n->nconn; i++)
    while (nbd_aio_in_flight (c->n->rh[i]) > 0)
      if (nbd_poll (c->n->rh[i], 1000) < 0)
        break;
}

static int
alloc_slots (struct copy *c)
{
  c->slots = calloc (c->nslots, sizeof *c->slots);
  if (!c->slots)
    return -1;
  for (unsigned i = 0; i < c->nslots; i++) {
    c->slots[i].c = c;
    if (!(c->slots[i].buf = malloc (c->req)))
      return -1;
    if (c->xform && !(c->slots[i].out = malloc (c->sink->transform_cap)))
      return -1;
  }
  return 0;
}

static void
free_copy (struct copy *c)
{
  for (unsigned i = 0; c->slots && i < c->nslots; i++) {
    free (c->slots[i].buf);
    free (c->slots[i].out);
  }
  free (c->slots);
  if (c->efd >= 0)
    close (c->efd);
  vb_extiter_free (&c->it);
}

int
vb_nbd_copy (struct vb_nbd *n, const struct vb_sink *sink,
             const struct vb_copy_opts *o, struct vb_copy_stats *st)
{
  struct copy c = { .n = n, .sink = sink, .st = st, .o = o, .efd = -1,
                    .mu = PTHREAD_MUTEX_INITIALIZER,
                    .wcv = PTHREAD_COND_INITIALIZER,
                    .xcv = PTHREAD_COND_INITIALIZER };
  pthread_t th, wth[VB_MAX_WORKERS];
  unsigned nw = 0;
  int r;

  memset (st, 0, sizeof *st);
  c.xform = sink->transform != NULL;
  c.req = o && o->req_size ? o->req_size : DEFAULT_REQ;
  c.nslots = o && o->max_inflight ? o->max_inflight : DEFAULT_INFLIGHT;
  vb_extiter_init (&c.it, n, 0);
  if (alloc_slots (&c) < 0 ||
      (c.efd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
    vb_set_error ("%s: out of memory", n->export);
    free_copy (&c);
    return -1;
  }
  if (pthread_create (&th, NULL, writer, &c) != 0) {
    vb_set_error ("%s: cannot start the writer thread", n->export);
    free_copy (&c);
    return -1;
  }
  if (o && o->mapper)
    vb_mapper_set_wake (o->mapper, c.efd);
  c.nworkers = sink->workers < 1 ? 1 : sink->workers > VB_MAX_WORKERS ?
    VB_MAX_WORKERS : sink->workers;
  for (; c.xform && nw < c.nworkers; nw++)
    if (pthread_create (&wth[nw], NULL, worker, &c) != 0)
      break;
  if (c.xform && nw < c.nworkers) {
    /* A missing worker would strand its chains. */
    vb_set_error ("%s: cannot start the transform threads", n->export);
    r = -1;
  }
  else
    r = reader_loop (&c);
  if (r < 0)
    fail (&c);
  pthread_join (th, NULL);
  for (unsigned i = 0; i < nw; i++)
    pthread_join (wth[i], NULL);
  settle (&c);
  if (o && o->mapper)
    vb_mapper_set_wake (o->mapper, -1);
  if (c.have_werr) {
    vb_error_restore (&c.werr);
    r = -1;
  }
  else if (r == 0 && c.failed)
    r = -1;
  free_copy (&c);
  return r;
}
