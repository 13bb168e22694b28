/* SPDX-License-Identifier: GPL-3.0-or-later */
/* writer.c: many NBD writes in flight on one connection, from a fixed pool
 * of buffers.  See writer.h.  One connection is enough: QEMU's qcow2 write
 * path runs in one AioContext, so depth matters, not connection count. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>

#include "common/error.h"
#include "nbd/nbd.h"
#include "nbd/writer.h"

#define MAX_POOL (64u << 20)
/* Write-zeroes requests larger than this are split (the NBD length field
 * is 32 bits; QEMU accepts this size). */
#define MAX_ZERO (1u << 30)
#define MAX_ZERO_INFLIGHT 16

struct buf {
  char *data;
  bool lent;                   /* given to the caller or in flight */
  uint64_t offset;             /* of the request, for messages */
  size_t len;
  struct vb_nbd_writer *w;
};

struct vb_nbd_writer {
  struct nbd_handle *h;
  struct buf *bufs;
  unsigned nbufs;
  size_t bufsize;
  unsigned zeros_in_flight;
  volatile sig_atomic_t *stop;
  int err;                     /* first failed request's errno */
  uint64_t err_off, err_len;
  const char *err_what;
  char *target;                /* the image behind the server, for errors */
};

static void
record_error (struct vb_nbd_writer *w, int err, const char *what,
              uint64_t off, uint64_t len)
{
  if (w->err)
    return;
  w->err = err ? err : EIO;
  w->err_what = what;
  w->err_off = off;
  w->err_len = len;
}

static int
set_request_error (struct vb_nbd_writer *w)
{
  vb_set_error_errno (w->err, "%s%sNBD %s of %" PRIu64 " bytes at offset %"
                      PRIu64, w->target ? w->target : "",
                      w->target ? ": " : "", w->err_what, w->err_len,
                      w->err_off);
  return -1;
}

void
vb_nbd_writer_set_target (struct vb_nbd_writer *w, const char *target)
{
  free (w->target);
  w->target = target ? strdup (target) : NULL;
}

int
vb_nbd_writer_errno (const struct vb_nbd_writer *w)
{
  return w->err;
}

/* A flush fails as a write does (ENOSPC of delayed allocation, EIO). */
static int
flush_error (struct vb_nbd_writer *w)
{
  record_error (w, nbd_get_errno (), "flush", 0, vb_nbd_writer_size (w));
  vb_set_error ("%s%sNBD flush: %s", w->target ? w->target : "",
                w->target ? ": " : "", nbd_get_error ());
  return -1;
}

static int
write_done (void *opaque, int *error)
{
  struct buf *b = opaque;

  if (*error)
    record_error (b->w, *error, "write", b->offset, b->len);
  b->lent = false;
  return 1;
}

struct zero_req {
  struct vb_nbd_writer *w;
  uint64_t offset, len;
};

static int
zero_done (void *opaque, int *error)
{
  struct zero_req *z = opaque;

  if (*error)
    record_error (z->w, *error, "write-zeroes", z->offset, z->len);
  z->w->zeros_in_flight--;
  return 1;
}

/* Let the connection make progress; fails on a connection error, a failed
 * request, or the stop flag. */
static int
poll_once (struct vb_nbd_writer *w)
{
  if (w->stop && __atomic_load_n (w->stop, __ATOMIC_RELAXED)) {
    vb_set_error ("interrupted");
    return -1;
  }
  if (nbd_poll (w->h, 1000) == -1 && nbd_get_errno () != EINTR) {
    vb_set_error ("NBD connection: %s", nbd_get_error ());
    return -1;
  }
  if (w->err)
    return set_request_error (w);
  return 0;
}

struct vb_nbd_writer *
vb_nbd_writer_open (const char *socket, unsigned nbufs, size_t bufsize,
                    volatile sig_atomic_t *stop)
{
  struct vb_nbd_writer *w;

  if (nbufs == 0 || bufsize == 0 || bufsize > MAX_POOL / nbufs) {
    vb_set_error ("NBD writer: a pool of %u x %zu bytes is out of bounds",
                  nbufs, bufsize);
    return NULL;
  }
  w = calloc (1, sizeof *w);
  if (!w || !(w->bufs = calloc (nbufs, sizeof *w->bufs))) {
    free (w);
    vb_set_error_errno (ENOMEM, "NBD writer");
    return NULL;
  }
  w->nbufs = nbufs;
  w->bufsize = bufsize;
  w->stop = stop;
  for (unsigned i = 0; i < nbufs; i++) {
    w->bufs[i].w = w;
    if (!(w->bufs[i].data = malloc (bufsize))) {
      vb_nbd_writer_close (w);
      vb_set_error_errno (ENOMEM, "NBD writer");
      return NULL;
    }
  }
  w->h = nbd_create ();
  if (!w->h) {
    vb_set_error ("NBD writer: %s", nbd_get_error ());
    vb_nbd_writer_close (w);
    return NULL;
  }
  if (vb_nbd_connect_unix (w->h, socket, stop) < 0) {
    vb_prefix_error ("NBD writer");
    vb_nbd_writer_close (w);
    return NULL;
  }
  if (nbd_is_read_only (w->h) == 1 || nbd_can_zero (w->h) != 1) {
    vb_set_error ("NBD server at %s is read-only or cannot write zeroes",
                  socket);
    vb_nbd_writer_close (w);
    return NULL;
  }
  return w;
}

uint64_t
vb_nbd_writer_size (struct vb_nbd_writer *w)
{
  int64_t s = nbd_get_size (w->h);
  return s < 0 ? 0 : (uint64_t) s;
}

void *
vb_nbd_writer_buffer (struct vb_nbd_writer *w, size_t *cap)
{
  for (;;) {
    if (w->err) {
      set_request_error (w);
      return NULL;
    }
    for (unsigned i = 0; i < w->nbufs; i++) {
      if (!w->bufs[i].lent) {
        w->bufs[i].lent = true;
        *cap = w->bufsize;
        return w->bufs[i].data;
      }
    }
    if (poll_once (w) == -1)
      return NULL;
  }
}

static struct buf *
find_buf (struct vb_nbd_writer *w, void *data)
{
  for (unsigned i = 0; i < w->nbufs; i++)
    if (w->bufs[i].data == data)
      return &w->bufs[i];
  return NULL;
}

void
vb_nbd_writer_release (struct vb_nbd_writer *w, void *data)
{
  struct buf *b = find_buf (w, data);
  if (b)
    b->lent = false;
}

int
vb_nbd_writer_submit (struct vb_nbd_writer *w, void *data, size_t len,
                      uint64_t offset)
{
  struct buf *b = find_buf (w, data);
  nbd_completion_callback cb = { .callback = write_done };

  if (!b || len > w->bufsize) {
    vb_set_error ("NBD writer: submit of a buffer it did not lend");
    return -1;
  }
  if (w->err) {
    b->lent = false;
    return set_request_error (w);
  }
  b->offset = offset;
  b->len = len;
  cb.user_data = b;
  if (nbd_aio_pwrite (w->h, b->data, len, offset, cb, 0) == -1) {
    b->lent = false;
    vb_set_error ("NBD write of %zu bytes at offset %" PRIu64 ": %s", len,
                  offset, nbd_get_error ());
    return -1;
  }
  return 0;
}

static int
submit_zero (struct vb_nbd_writer *w, uint64_t offset, uint64_t len)
{
  struct zero_req *z = malloc (sizeof *z);
  nbd_completion_callback cb = { .callback = zero_done, .user_data = z,
                                 .free = free };

  if (!z) {
    vb_set_error_errno (ENOMEM, "NBD write-zeroes");
    return -1;
  }
  *z = (struct zero_req) { .w = w, .offset = offset, .len = len };
  if (nbd_aio_zero (w->h, len, offset, cb, 0) == -1) {
    /* libnbd has called .free already, also on this path. */
    vb_set_error ("NBD write-zeroes of %" PRIu64 " bytes at offset %" PRIu64
                  ": %s", len, offset, nbd_get_error ());
    return -1;
  }
  w->zeros_in_flight++;
  return 0;
}

int
vb_nbd_writer_zero (struct vb_nbd_writer *w, uint64_t offset, uint64_t len)
{
  while (len > 0) {
    uint64_t n = len < MAX_ZERO ? len : MAX_ZERO;

    while (w->zeros_in_flight >= MAX_ZERO_INFLIGHT)
      if (poll_once (w) == -1)
        return -1;
    if (w->err)
      return set_request_error (w);
    if (submit_zero (w, offset, n) == -1)
      return -1;
    offset += n;
    len -= n;
  }
  return 0;
}

int
vb_nbd_writer_drain (struct vb_nbd_writer *w)
{
  while (nbd_aio_in_flight (w->h) > 0)
    if (poll_once (w) == -1)
      return -1;
  return w->err ? set_request_error (w) : 0;
}

int
vb_nbd_writer_finish (struct vb_nbd_writer *w)
{
  int64_t cookie;

  if (vb_nbd_writer_drain (w) == -1)
    return -1;
  cookie = nbd_aio_flush (w->h, NBD_NULL_COMPLETION, 0);
  if (cookie == -1)
    return flush_error (w);
  for (;;) {
    int r = nbd_aio_command_completed (w->h, cookie);
    if (r == 1)
      return 0;
    if (r == -1)
      return flush_error (w);
    if (poll_once (w) == -1)
      return -1;
  }
}

void
vb_nbd_writer_close (struct vb_nbd_writer *w)
{
  if (!w)
    return;
  if (w->h) {
    /* Completions of requests still in flight point into w: close first. */
    nbd_shutdown (w->h, LIBNBD_SHUTDOWN_ABANDON_PENDING);
    nbd_close (w->h);
  }
  for (unsigned i = 0; i < w->nbufs; i++)
    free (w->bufs[i].data);
  free (w->bufs);
  free (w->target);
  free (w);
}
