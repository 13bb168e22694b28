/* SPDX-License-Identifier: GPL-3.0-or-later */
/* backend_nbd.c: an NBD export as a ticket's image (internal.h).  Each
 * backend is one libnbd connection, used by one client connection's
 * thread.  Extents combine base:allocation (zero), qemu:allocation-depth
 * (hole, where the server offers it) and, for a dirty ticket, the one
 * qemu:dirty-bitmap:* context the export offers. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>

#include "common/error.h"
#include "serve/internal.h"

/* Zero and block status ask at most this much at a time. */
#define NBD_CHUNK (1u << 30)

/* A read or write goes as requests of NBD_PIECE, NBD_INFLIGHT of them in
 * flight at once: one at a time, each would wait out the server's
 * latency alone (a third of the throughput, measured). */
#define NBD_INFLIGHT 16
#define NBD_PIECE (256u << 10)

struct nbdb {
  struct nbd_handle *h;
  char *dirty_ctx;
  bool base, depth;
};

static void nbdb_free (struct nbdb *n);

static int
nerr (const char *what)
{
  vb_set_error ("NBD %s: %s", what, nbd_get_error () ? nbd_get_error ()
                : "failed");
  return -1;
}

/* Wait for the N requests of COOKIES; -1 if one failed (all are waited
 * for, since their buffers are the caller's). */
static int
n_wait (struct nbdb *n, const int64_t *cookies, size_t nq, const char *what)
{
  int r = 0;

  for (size_t i = 0; i < nq; i++) {
    int done;

    while ((done = nbd_aio_command_completed (n->h, (uint64_t) cookies[i])) == 0)
      if (nbd_poll (n->h, -1) < 0)
        return nerr (what);
    if (done < 0 && r == 0)
      r = nerr (what);
  }
  return r;
}

/* LEN bytes at OFF, read into BUF or written from it, NBD_INFLIGHT
 * pieces at a time. */
static int
n_io (struct nbdb *n, bool write, char *buf, size_t len, uint64_t off)
{
  const char *what = write ? "write" : "read";
  int64_t cookies[NBD_INFLIGHT];

  while (len) {
    size_t nq = 0, k;
    int r = 0;

    for (; nq < NBD_INFLIGHT && len; nq++, len -= k, off += k, buf += k) {
      k = len < NBD_PIECE ? len : NBD_PIECE;
      cookies[nq] = write
        ? nbd_aio_pwrite (n->h, buf, k, off, NBD_NULL_COMPLETION, 0)
        : nbd_aio_pread (n->h, buf, k, off, NBD_NULL_COMPLETION, 0);
      if (cookies[nq] < 0) {
        r = nerr (what);
        break;
      }
    }
    if (n_wait (n, cookies, nq, what) < 0 || r < 0)
      return -1;
  }
  return 0;
}

static int
n_pread (struct vb_backend *b, void *buf, size_t len, uint64_t off)
{
  return n_io (b->priv, false, buf, len, off);
}

/* libnbd only reads a write's buffer, whatever its prototype says. */
static int
n_pwrite (struct vb_backend *b, const void *buf, size_t len, uint64_t off)
{
  return n_io (b->priv, true, (char *) (uintptr_t) buf, len, off);
}

static int
n_zero (struct vb_backend *b, uint64_t len, uint64_t off, bool punch)
{
  struct nbdb *n = b->priv;

  for (uint64_t k; len; len -= k, off += k)
    if (nbd_zero (n->h, k = len < NBD_CHUNK ? len : NBD_CHUNK, off,
                  punch ? 0 : LIBNBD_CMD_FLAG_NO_HOLE) < 0)
      return nerr ("zero");
  return 0;
}

static int
n_flush (struct vb_backend *b)
{
  struct nbdb *n = b->priv;

  if (nbd_can_flush (n->h) == 1 && nbd_flush (n->h, 0) < 0)
    return nerr ("flush");
  return 0;
}

/* One block-status window: per context its (length, flags) pairs. */
enum { C_BASE, C_DEPTH, C_DIRTY, C_N };
struct window {
  struct nbdb *n;
  uint32_t *e[C_N];
  size_t ne[C_N];
  bool failed;
};

static int
status_cb (void *op, const char *ctx, uint64_t off, uint32_t *entries,
           size_t nr, int *error)
{
  struct window *w = op;
  int c = !strcmp (ctx, "base:allocation") ? C_BASE
    : !strcmp (ctx, "qemu:allocation-depth") ? C_DEPTH
    : w->n->dirty_ctx && !strcmp (ctx, w->n->dirty_ctx) ? C_DIRTY : -1;

  if (c < 0 || w->e[c])
    return 0;
  if (!(w->e[c] = malloc (nr * sizeof *entries))) {
    w->failed = true;
    return 0;
  }
  memcpy (w->e[c], entries, nr * sizeof *entries);
  w->ne[c] = nr;
  return 0;
}

static unsigned
flags_of (int c, uint32_t f)
{
  if (c == C_BASE)
    return f & LIBNBD_STATE_ZERO ? VB_EXT_F_ZERO : 0;
  if (c == C_DEPTH)
    return f == 0 ? VB_EXT_F_HOLE : 0;
  return f & 1 ? VB_EXT_F_DIRTY : 0;
}

/* Cut [OFF, OFF+LEN) at every boundary of every context present and hand
 * the pieces on; returns the bytes covered (what all contexts cover). */
static int64_t
merge (struct window *w, bool want[C_N], uint64_t off, uint64_t len,
       vb_srv_extent_cb cb, void *op)
{
  size_t i[C_N] = { 0 };
  uint64_t end[C_N] = { 0 }, pos = off;

  for (int c = 0; c < C_N; c++)
    end[c] = want[c] && w->ne[c] >= 2 ? off + w->e[c][0] : off + len;
  while (pos < off + len) {
    uint64_t stop = off + len;
    unsigned fl = 0;

    for (int c = 0; c < C_N; c++) {
      if (!want[c])
        continue;
      while (end[c] <= pos) {
        if ((i[c] += 2) + 1 >= w->ne[c])
          return (int64_t) (pos - off);
        end[c] += w->e[c][i[c]];
      }
      stop = end[c] < stop ? end[c] : stop;
      fl |= flags_of (c, w->e[c][i[c] + 1]);
    }
    if (cb (op, pos, stop - pos, fl) < 0)
      return -1;
    pos = stop;
  }
  return (int64_t) len;
}

static int64_t
one_window (struct nbdb *n, bool dirty, uint64_t off, uint64_t len,
            vb_srv_extent_cb cb, void *op)
{
  struct window w = { .n = n };
  bool want[C_N] = { n->base, n->depth, dirty };
  int64_t r = -1;

  if (nbd_block_status (n->h, len, off, (nbd_extent_callback) {
        .callback = status_cb, .user_data = &w }, 0) < 0)
    nerr ("block status");
  else if (w.failed)
    vb_set_error_errno (ENOMEM, "block status");
  else if (dirty && !w.e[C_DIRTY])
    vb_set_error ("NBD block status: the server sent no dirty bitmap");
  else if ((r = merge (&w, want, off, len, cb, op)) == 0)
    vb_set_error ("NBD block status: the server's reply covers nothing"), r = -1;
  for (int c = 0; c < C_N; c++)
    free (w.e[c]);
  return r;
}

static int
n_extents (struct vb_backend *b, bool dirty, uint64_t off, uint64_t len,
           vb_srv_extent_cb cb, void *op)
{
  struct nbdb *n = b->priv;
  uint64_t end = off + len;

  if (!n->base && !dirty && !n->depth)
    return cb (op, off, len, 0);
  while (off < end) {
    uint64_t k = end - off < NBD_CHUNK ? end - off : NBD_CHUNK;
    int64_t r = one_window (n, dirty, off, k, cb, op);

    if (r < 0)
      return -1;
    off += (uint64_t) r;
  }
  return 0;
}

static void
n_close (struct vb_backend *b)
{
  nbdb_free (b->priv);
}

static const struct vb_backend_ops nbd_ops = {
  n_pread, n_pwrite, n_zero, n_flush, n_extents, n_close,
};

static int
list_cb (void *op, const char *name)
{
  char **out = op;

  if (!*out && !strncmp (name, "qemu:dirty-bitmap:", 18))
    *out = strdup (name);
  return 0;
}

/* In option mode: find the dirty bitmap (for a dirty ticket), ask for
 * the contexts, then go. */
static int
negotiate (struct nbdb *n, struct vb_ticket *t)
{
  if (t->dirty) {
    if (nbd_add_meta_context (n->h, "qemu:dirty-bitmap:") < 0
        || nbd_opt_list_meta_context (n->h, (nbd_context_callback) {
             .callback = list_cb, .user_data = &n->dirty_ctx }) < 0
        || nbd_clear_meta_contexts (n->h) < 0)
      return nerr ("list contexts");
  }
  if (nbd_add_meta_context (n->h, "base:allocation") < 0
      || nbd_add_meta_context (n->h, "qemu:allocation-depth") < 0
      || (n->dirty_ctx && nbd_add_meta_context (n->h, n->dirty_ctx) < 0)
      || nbd_opt_go (n->h) < 0)
    return nerr ("handshake");
  n->base = nbd_can_meta_context (n->h, "base:allocation") == 1;
  n->depth = nbd_can_meta_context (n->h, "qemu:allocation-depth") == 1;
  if (n->dirty_ctx && nbd_can_meta_context (n->h, n->dirty_ctx) != 1) {
    free (n->dirty_ctx);
    n->dirty_ctx = NULL;
  }
  return 0;
}

static void
nbdb_free (struct nbdb *n)
{
  nbd_close (n->h);
  free (n->dirty_ctx);
  free (n);
}

struct vb_backend *
vb_backend_nbd_open (struct vb_ticket *t)
{
  struct nbdb *n = calloc (1, sizeof *n);
  struct vb_backend *b;
  int64_t size;

  if (!n || !(n->h = nbd_create ())) {
    free (n);
    return vb_set_error_errno (ENOMEM, "nbd"), NULL;
  }
  /* A failed read is never sent, so libnbd need not zero every buffer
   * first (a memset of each byte served). */
  nbd_set_pread_initialize (n->h, false);
  if (nbd_set_export_name (n->h, t->export ? t->export : "") < 0
      || nbd_set_opt_mode (n->h, true) < 0
      || nbd_connect_unix (n->h, t->path) < 0) {
    nerr ("connect");
    goto fail;
  }
  if (negotiate (n, t) < 0)
    goto fail;
  if ((size = nbd_get_size (n->h)) < 0) {
    nerr ("size");
    goto fail;
  }
  if (!(b = vb_backend_new (&nbd_ops, n, (uint64_t) size)))
    goto fail;
  b->has_dirty = n->dirty_ctx != NULL;
  return b;
 fail:
  vb_prefix_error ("%s", t->path);
  nbdb_free (n);
  return NULL;
}
