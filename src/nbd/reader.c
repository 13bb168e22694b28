/* The asynchronous copy engine: many reads in flight on one connection,
 * delivered to the sink in disk order through a ring of slots. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>

#include "common/error.h"
#include "nbd/nbd.h"

#define DEFAULT_REQ (1u << 20)
#define DEFAULT_INFLIGHT 16

enum slot_state { SLOT_FREE, SLOT_BUSY, SLOT_DONE };

struct slot {
  enum slot_state state;
  int err;                     /* errno from the completion */
  enum vb_ext_type type;
  uint64_t off, len;           /* this piece (or the whole ZERO extent) */
  uint64_t ext_off, ext_len;   /* the DATA extent the piece belongs to */
  bool first, last;
  char *buf;
};

struct copy {
  struct vb_nbd *n;
  const struct vb_sink *sink;
  struct vb_copy_stats *st;
  struct vb_extiter it;
  struct vb_extent ext;        /* extent being cut into pieces */
  uint64_t pos;                /* next offset inside ext */
  bool have_ext, eof;
  uint32_t req;
  unsigned nslots, head, tail, used;
  struct slot *slots;
};

static int
read_done (void *opaque, int *error)
{
  struct slot *s = opaque;

  s->err = *error;
  s->state = SLOT_DONE;
  return 1;
}

/* Cut the next piece off the current extent, fetching extents as needed.
 * Returns 1 with *S filled (buffer untouched), 0 at end, -1 error. */
static int
next_piece (struct copy *c, struct slot *s)
{
  while (!c->have_ext || c->pos == c->ext.off + c->ext.len) {
    int r = vb_extiter_next (&c->it, &c->ext);
    if (r <= 0)
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
  }
  c->pos += s->len;
  s->last = c->pos == c->ext.off + c->ext.len;
  return 1;
}

static int
issue (struct copy *c, struct slot *s)
{
  if (s->type == VB_EXT_ZERO) {
    s->state = SLOT_DONE;
    s->err = 0;
    return 0;
  }
  s->state = SLOT_BUSY;
  if (nbd_aio_pread (c->n->h, s->buf, s->len, s->off,
                     (nbd_completion_callback) { .callback = read_done,
                                                 .user_data = s }, 0) < 0) {
    vb_set_error ("%s: read at %" PRIu64 ": %s", c->n->export, s->off,
                  nbd_get_error ());
    s->state = SLOT_FREE;
    return -1;
  }
  c->st->requests++;
  return 0;
}

/* Fill the ring with new requests. */
static int
fill (struct copy *c)
{
  while (!c->eof && c->used < c->nslots) {
    struct slot *s = &c->slots[c->tail];
    int r = next_piece (c, s);
    if (r < 0)
      return -1;
    if (r == 0) {
      c->eof = true;
      break;
    }
    if (issue (c, s) < 0)
      return -1;
    c->tail = (c->tail + 1) % c->nslots;
    c->used++;
  }
  return 0;
}

static int
emit (struct copy *c, struct slot *s)
{
  const struct vb_sink *k = c->sink;

  if (s->err) {
    vb_set_error_errno (s->err, "%s: read at %" PRIu64, c->n->export, s->off);
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
  if (k->data (k->op, s->buf, s->len) < 0)
    return -1;
  return s->last ? k->end_data (k->op) : 0;
}

/* Hand every finished slot at the head of the ring to the sink. */
static int
drain (struct copy *c)
{
  while (c->used && c->slots[c->head].state == SLOT_DONE) {
    struct slot *s = &c->slots[c->head];
    if (emit (c, s) < 0)
      return -1;
    s->state = SLOT_FREE;
    c->head = (c->head + 1) % c->nslots;
    c->used--;
  }
  return 0;
}

static int
copy_loop (struct copy *c, const struct vb_copy_opts *o)
{
  for (;;) {
    if (o && o->cancel && *o->cancel) {
      vb_set_error ("%s: interrupted", c->n->export);
      return -1;
    }
    if (fill (c) < 0 || drain (c) < 0)
      return -1;
    if (c->eof && !c->used)
      return 0;
    if (c->used && c->slots[c->head].state == SLOT_BUSY &&
        nbd_poll (c->n->h, 1000) < 0) {
      vb_set_error ("%s: %s", c->n->export, nbd_get_error ());
      return -1;
    }
  }
}

/* Wait for reads still in flight so no callback touches freed slots. */
static void
settle (struct copy *c)
{
  while (nbd_aio_in_flight (c->n->h) > 0)
    if (nbd_poll (c->n->h, 1000) < 0)
      break;
}

int
vb_nbd_copy (struct vb_nbd *n, const struct vb_sink *sink,
             const struct vb_copy_opts *o, struct vb_copy_stats *st)
{
  struct copy c = { .n = n, .sink = sink, .st = st };
  int r = -1;

  memset (st, 0, sizeof *st);
  c.req = o && o->req_size ? o->req_size : DEFAULT_REQ;
  c.nslots = o && o->max_inflight ? o->max_inflight : DEFAULT_INFLIGHT;
  c.slots = calloc (c.nslots, sizeof *c.slots);
  if (!c.slots)
    goto out;
  for (unsigned i = 0; i < c.nslots; i++)
    if (!(c.slots[i].buf = malloc (c.req)))
      goto out;
  vb_extiter_init (&c.it, n, 0);
  r = copy_loop (&c, o);
  if (r < 0)
    settle (&c);
  vb_extiter_free (&c.it);
 out:
  if (!c.slots || (r < 0 && !*vb_get_error ()))
    vb_set_error ("out of memory");
  for (unsigned i = 0; c.slots && i < c.nslots; i++)
    free (c.slots[i].buf);
  free (c.slots);
  return r;
}
