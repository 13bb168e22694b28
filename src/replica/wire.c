/* SPDX-License-Identifier: GPL-3.0-or-later */
/* wire.c: the replication wire over a pair of pipes (ssh's, or the
 * receiver's stdin and stdout).  See internal.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "replica/internal.h"

#define WIRE_BUF (256u << 10)
#define WIRE_PIPE (1 << 20)
/* A line holds at most a domain XML: more is not a peer of ours. */
#define LINE_MAX_LEN (16u << 20)

int
vb_wire_init (struct vb_wire *w, int in, int out, const char *peer)
{
  memset (w, 0, sizeof *w);
  w->in = in;
  w->out = out;
  w->peer = peer;
  w->cap = WIRE_BUF;
  if (!(w->buf = malloc (w->cap))) {
    vb_set_error ("out of memory");
    return -1;
  }
  /* A pipe holds 64 KiB by default: each data piece would take many
   * wake-ups of both ends.  Not a pipe, or no room: as it is. */
  (void) fcntl (in, F_SETPIPE_SZ, WIRE_PIPE);
  (void) fcntl (out, F_SETPIPE_SZ, WIRE_PIPE);
  if (fcntl (in, F_SETFL, fcntl (in, F_GETFL) | O_NONBLOCK) < 0 ||
      fcntl (out, F_SETFL, fcntl (out, F_GETFL) | O_NONBLOCK) < 0) {
    vb_set_error_errno (errno, "wire to %s", peer);
    return -1;
  }
  return 0;
}

void
vb_wire_free (struct vb_wire *w)
{
  free (w->buf);
  w->buf = NULL;
}

/* Wait until FD is ready for EVENTS: 0, or -1 on cancel or timeout. */
static int
wait_fd (struct vb_wire *w, int fd, short events)
{
  int waited = 0;

  for (;;) {
    struct pollfd p = { .fd = fd, .events = events };
    if (w->cancel && __atomic_load_n (w->cancel, __ATOMIC_RELAXED)) {
      vb_set_error_code (VB_ERR_CANCELLED, 0, "interrupted by a signal");
      return -1;
    }
    int r = poll (&p, 1, 100);
    if (r > 0)
      return 0;
    if (r < 0 && errno != EINTR) {
      vb_set_error_errno (errno, "wait for %s", w->peer);
      return -1;
    }
    waited += 100;
    if (w->timeout_ms && waited >= w->timeout_ms) {
      vb_set_error ("%s sent nothing for %d s: the link is down or it hangs",
                    w->peer, w->timeout_ms / 1000);
      return -1;
    }
  }
}

/* The peer closed its end while we were sending: the line it sent
 * before, if it said why, beats "Broken pipe". */
static void
why_closed (struct vb_wire *w)
{
  struct vb_error e;
  int timeout = w->timeout_ms;
  struct json_object *o;

  vb_error_save (&e);
  w->timeout_ms = 2000;
  o = vb_wire_recv_json (w);
  w->timeout_ms = timeout;
  if (o || strncmp (vb_get_error (), w->peer, strlen (w->peer)) ||
      vb_get_error ()[strlen (w->peer)] != ':')
    vb_error_restore (&e);
  json_object_put (o);
}

int
vb_wire_write (struct vb_wire *w, const void *buf, size_t len)
{
  const char *p = buf;

  while (len > 0) {
    ssize_t n = write (w->out, p, len);
    if (n > 0) {
      p += n;
      len -= n;
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      int err = errno;
      vb_set_error_errno (err, "send to %s", w->peer);
      if (err == EPIPE)
        why_closed (w);
      return -1;
    }
    if (wait_fd (w, w->out, POLLOUT) < 0)
      return -1;
  }
  return 0;
}

/* Read more into the buffer (growing it up to LINE_MAX_LEN when full). */
static int
fill (struct vb_wire *w)
{
  ssize_t n;

  if (w->pos > 0 && w->pos == w->len)
    w->pos = w->len = 0;
  if (w->len == w->cap) {
    if (w->pos > 0) {
      memmove (w->buf, w->buf + w->pos, w->len - w->pos);
      w->len -= w->pos;
      w->pos = 0;
    }
    else {
      char *nb = w->cap < LINE_MAX_LEN ? realloc (w->buf, w->cap * 2) : NULL;
      if (!nb) {
        vb_set_error ("%s sent a line longer than %u bytes", w->peer,
                      LINE_MAX_LEN);
        return -1;
      }
      w->buf = nb;
      w->cap *= 2;
    }
  }
  for (;;) {
    n = read (w->in, w->buf + w->len, w->cap - w->len);
    if (n > 0) {
      w->len += n;
      return 0;
    }
    if (n == 0) {
      vb_set_error ("%s closed the connection", w->peer);
      return -1;
    }
    if (errno != EAGAIN && errno != EINTR) {
      vb_set_error_errno (errno, "receive from %s", w->peer);
      return -1;
    }
    if (wait_fd (w, w->in, POLLIN) < 0)
      return -1;
  }
}

int
vb_wire_read (struct vb_wire *w, void *buf, size_t len)
{
  char *p = buf;

  while (len > 0) {
    /* A data piece read straight to where it goes: one copy less. */
    if (w->pos == w->len && len >= WIRE_BUF / 4) {
      ssize_t n = read (w->in, p, len);
      if (n > 0) {
        p += n;
        len -= n;
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        if (fill (w) < 0)      /* says what happened */
          return -1;
      }
      else if (wait_fd (w, w->in, POLLIN) < 0)
        return -1;
      continue;
    }
    if (w->pos == w->len && fill (w) < 0)
      return -1;
    size_t n = w->len - w->pos < len ? w->len - w->pos : len;
    memcpy (p, w->buf + w->pos, n);
    w->pos += n;
    p += n;
    len -= n;
  }
  return 0;
}

int
vb_wire_send_json (struct vb_wire *w, struct json_object *o)
{
  size_t len;
  const char *s = json_object_to_json_string_length
    (o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

  if (!s) {
    vb_set_error ("out of memory");
    return -1;
  }
  /* json-c escapes newlines inside strings, so the line ends here. */
  if (vb_wire_write (w, s, len) < 0 || vb_wire_write (w, "\n", 1) < 0)
    return -1;
  return 0;
}

struct json_object *
vb_wire_recv_json (struct vb_wire *w)
{
  for (;;) {
    char *nl = memchr (w->buf + w->pos, '\n', w->len - w->pos);
    if (nl) {
      size_t n = nl - (w->buf + w->pos);
      struct json_tokener *tok = json_tokener_new ();
      struct json_object *o = tok ? json_tokener_parse_ex (tok, w->buf + w->pos,
                                                         n) : NULL;
      bool whole = tok && json_tokener_get_error (tok) == json_tokener_success
                   && json_tokener_get_parse_end (tok) == n;
      json_tokener_free (tok);
      w->pos += n + 1;
      if (!o || !whole || !json_object_is_type (o, json_type_object)) {
        json_object_put (o);
        vb_set_error ("%s sent a line that is not a JSON object", w->peer);
        return NULL;
      }
      const char *err = o ? vb_json_str (o, "error") : NULL;
      if (err) {
        vb_set_error ("%s: %s", w->peer, err);
        json_object_put (o);
        return NULL;
      }
      return o;
    }
    if (fill (w) < 0)
      return NULL;
  }
}

int
vb_wire_send_frame (struct vb_wire *w, enum vb_frame_kind kind,
                    uint64_t start, uint64_t len)
{
  char h[VB_FRAME_LEN];

  vb_frame_format (h, kind, start, len);
  return vb_wire_write (w, h, sizeof h);
}

int
vb_wire_recv_frame (struct vb_wire *w, enum vb_frame_kind *kind,
                    uint64_t *start, uint64_t *len)
{
  char h[VB_FRAME_LEN];

  if (vb_wire_read (w, h, sizeof h) < 0)
    return -1;
  if (vb_frame_parse (h, kind, start, len) < 0) {
    vb_prefix_error ("%s sent a bad frame", w->peer);
    return -1;
  }
  return 0;
}

const char *
vb_json_str (struct json_object *o, const char *key)
{
  struct json_object *v;

  if (!o || !json_object_object_get_ex (o, key, &v) ||
      !json_object_is_type (v, json_type_string))
    return NULL;
  return json_object_get_string (v);
}

int64_t
vb_json_int (struct json_object *o, const char *key, int64_t dflt)
{
  struct json_object *v;

  if (!o || !json_object_object_get_ex (o, key, &v) ||
      !json_object_is_type (v, json_type_int))
    return dflt;
  return json_object_get_int64 (v);
}

void
vb_phase (const char *name)
{
  static double t0;
  double now = vb_mono ();

  if (t0 == 0)
    t0 = now;
  vb_debug ("phase %s +%.3f s", name, now - t0);
}
