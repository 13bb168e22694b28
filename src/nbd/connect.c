/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Connections: one export on a unix socket or on TCP (a remote host's
 * QEMU or qemu-nbd, with TLS for nbds://), with the contexts a map needs
 * or for plain reads only, more read connections beside it, and a connect
 * that a stop request or a silent server cannot hold forever. */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libnbd.h>
#include <libxml/uri.h>

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/error.h"
#include "nbd/nbd.h"

static int connect_timeout_ms = 60000;
static int io_timeout_s = 60;

void
vb_nbd_set_connect_timeout (int ms)
{
  connect_timeout_ms = ms;
}

void
vb_nbd_set_io_timeout (int s)
{
  io_timeout_s = s > 0 ? s : 60;
}

static bool
is_tcp (const char *addr)
{
  return !strncmp (addr, "nbd://", 6) || !strncmp (addr, "nbds://", 7);
}

/* A cut link must fail the copy within the timeout, not after the
 * kernel's retries (many minutes): the connection is dropped once data
 * sent stays unacknowledged for the timeout (TCP_USER_TIMEOUT), and an
 * idle one is probed (keepalive) so that a reply that never comes counts
 * as well. */
static void
tcp_timeouts (struct nbd_handle *h)
{
  int fd = nbd_aio_get_fd (h), on = 1;
  int idle = io_timeout_s >= 8 ? io_timeout_s / 4 : 2;
  int cnt = 3;
  unsigned ms = io_timeout_s * 1000u;

  if (fd < 0)
    return;
  setsockopt (fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  setsockopt (fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt (fd, IPPROTO_TCP, TCP_KEEPINTVL, &idle, sizeof idle);
  setsockopt (fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
  setsockopt (fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms);
  /* The handshake is small writes answered by small writes: with Nagle,
   * each second write waits for the peer's delayed ACK (~40 ms). */
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

/* ADDR is "nbd[s]://HOST:PORT[?QUERY]"; libnbd takes the export from the
 * URI's path, so the handle's export goes in there, escaped. */
static int
connect_tcp (struct nbd_handle *h, const char *addr)
{
  CLEANUP_FREE char *exp = nbd_get_export_name (h);
  CLEANUP_FREE char *uri = NULL;
  xmlChar *esc = exp ? xmlURIEscapeStr (BAD_CAST exp, BAD_CAST "") : NULL;
  size_t base = strcspn (addr, "?");
  int r;

  if (!esc || asprintf (&uri, "%.*s/%s%s", (int) base, addr, (char *) esc,
                        addr + base) < 0) {
    xmlFree (esc);
    return -1;
  }
  xmlFree (esc);
  /* tls-certificates= names a local directory: libnbd wants consent. */
  if (nbd_set_uri_allow_local_file (h, true) < 0)
    return -1;
  r = nbd_aio_connect_uri (h, uri);
  if (r == 0)
    tcp_timeouts (h);
  return r;
}

static int
connect_error (const char *socket)
{
  vb_set_error ("NBD connect%s%.*s: %s%s", is_tcp (socket) ? " to " : "",
                is_tcp (socket) ? (int) strcspn (socket, "?") : 0, socket,
                nbd_get_error () ? nbd_get_error ()
                : "the server closed the connection",
                strncmp (socket, "nbds://", 7) ? "" :
                " (TLS: the host must accept the client certificate of "
                "--tls-dir, and its own must name the address)");
  return -1;
}

/* Whether to go on waiting: not cancelled and not past the timeout. */
static int
still_waiting (const char *socket, double t0, volatile sig_atomic_t *cancel)
{
  if (cancel && __atomic_load_n (cancel, __ATOMIC_RELAXED)) {
    vb_set_error_code (VB_ERR_CANCELLED, 0, "NBD connect to %s: "
                       "interrupted", socket);
    return -1;
  }
  if ((vb_mono () - t0) * 1000 > connect_timeout_ms) {
    vb_set_error ("NBD connect: the server at %.*s did not answer in "
                  "%d ms", (int) strcspn (socket, "?"), socket,
                  connect_timeout_ms);
    return -1;
  }
  return 0;
}

/* One poll over the handles of H[0..N) still connecting; 1 once none is
 * left.  Driving them together makes N handshakes (TLS ones above all)
 * cost about one round of them. */
static int
poll_connecting (struct nbd_handle **h, unsigned n, const char *socket)
{
  struct pollfd pfd[VB_NBD_MAXCONN];
  unsigned idx[VB_NBD_MAXCONN], k = 0;

  for (unsigned i = 0; i < n; i++) {
    if (!nbd_aio_is_connecting (h[i])) {
      if (!nbd_aio_is_ready (h[i]))
        return connect_error (socket);
      continue;
    }
    unsigned dir = nbd_aio_get_direction (h[i]);
    pfd[k] = (struct pollfd) { .fd = nbd_aio_get_fd (h[i]),
      .events = (dir & LIBNBD_AIO_DIRECTION_READ ? POLLIN : 0) |
                (dir & LIBNBD_AIO_DIRECTION_WRITE ? POLLOUT : 0) };
    idx[k++] = i;
  }
  if (k == 0)
    return 1;
  if (poll (pfd, k, 100) < 0 && errno != EINTR)
    return connect_error (socket);
  for (unsigned j = 0; j < k; j++) {
    struct nbd_handle *x = h[idx[j]];
    int r = 0;
    if (pfd[j].revents & (POLLIN | POLLHUP | POLLERR))
      r = nbd_aio_notify_read (x);
    else if (pfd[j].revents & POLLOUT)
      r = nbd_aio_notify_write (x);
    if (r < 0)
      return connect_error (socket);
  }
  return 0;
}

/* Connect H[0..N) to SOCKET at once.  A server that accepts but never
 * greets (qemu-nbd past its client limit queues us in the listen
 * backlog) would hold a plain nbd_connect_unix forever, beyond the reach
 * of SIGTERM: the wait here ends on CANCEL and after the timeout. */
static int
connect_all (struct nbd_handle **h, unsigned n, const char *socket,
             volatile sig_atomic_t *cancel)
{
  double t0 = vb_mono ();
  int r;

  for (unsigned i = 0; i < n; i++)
    if ((is_tcp (socket) ? connect_tcp (h[i], socket)
         : nbd_aio_connect_unix (h[i], socket)) < 0)
      return connect_error (socket);
  while ((r = poll_connecting (h, n, socket)) == 0)
    if (still_waiting (socket, t0, cancel) < 0)
      return -1;
  return r < 0 ? -1 : 0;
}

int
vb_nbd_connect_unix (struct nbd_handle *h, const char *socket,
                     volatile sig_atomic_t *cancel)
{
  return connect_all (&h, 1, socket, cancel);
}

/* A connection only for reads asks for no metadata and no structured
 * replies: with them QEMU looks up the allocation of every range it is
 * asked to read, to send holes as holes; we read only data. */
static struct nbd_handle *
plain_handle (const char *export)
{
  struct nbd_handle *h = nbd_create ();

  if (h && (nbd_set_export_name (h, export) < 0 ||
            nbd_set_request_structured_replies (h, false) < 0)) {
    nbd_close (h);
    return NULL;
  }
  if (h)
    nbd_set_pread_initialize (h, false);
  return h;
}

/* A handle asking for the extents of EXPORT: base:allocation, and
 * DIRTY_CTX when set. */
static struct nbd_handle *
meta_handle (const char *export, const char *dirty_ctx)
{
  struct nbd_handle *h = nbd_create ();

  if (h && (nbd_set_export_name (h, export) < 0 ||
            nbd_add_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0 ||
            (dirty_ctx && nbd_add_meta_context (h, dirty_ctx) < 0))) {
    nbd_close (h);
    return NULL;
  }
  /* Buffers are only read after a successful reply: no need to zero. */
  if (h)
    nbd_set_pread_initialize (h, false);
  return h;
}

/* Connect H (NULL: it could not be made) to EXPORT on SOCKET; N owns H
 * from here on, also on failure. */
static struct vb_nbd *
open_export (struct nbd_handle *h, const char *socket, const char *export,
             const char *dirty_ctx, volatile sig_atomic_t *cancel)
{
  struct vb_nbd *n;
  int64_t size;

  if (!h) {
    vb_set_error ("%s: NBD: %s", export, nbd_get_error ());
    return NULL;
  }
  if (!(n = calloc (1, sizeof *n))) {
    nbd_close (h);
    vb_set_error ("out of memory");
    return NULL;
  }
  n->h = n->rh[0] = h;
  n->nconn = 1;
  n->cancel = cancel;
  if (!(n->export = strdup (export)) ||
      (dirty_ctx && !(n->dirty_ctx = strdup (dirty_ctx)))) {
    vb_set_error ("out of memory");
    goto fail;
  }
  if (vb_nbd_connect_unix (h, socket, cancel) < 0) {
    vb_prefix_error ("%s", export);
    goto fail;
  }
  if (dirty_ctx && nbd_can_meta_context (h, dirty_ctx) != 1) {
    vb_set_error ("%s: the NBD server does not offer %s", export, dirty_ctx);
    goto fail;
  }
  if ((size = nbd_get_size (h)) < 0) {
    vb_set_error ("%s: NBD: %s", export, nbd_get_error ());
    goto fail;
  }
  n->size = size;
  return n;
 fail:
  vb_nbd_close (n);
  return NULL;
}

struct vb_nbd *
vb_nbd_connect_reads (const char *socket, const char *export,
                      volatile sig_atomic_t *cancel)
{
  return open_export (plain_handle (export), socket, export, NULL, cancel);
}

struct vb_nbd *
vb_nbd_connect (const char *socket, const char *export, const char *dirty_ctx,
                volatile sig_atomic_t *cancel)
{
  return open_export (meta_handle (export, dirty_ctx), socket, export,
                      dirty_ctx, cancel);
}

int
vb_nbd_add_connections (struct vb_nbd *n, const char *socket, unsigned nconn)
{
  unsigned first = n->nconn;

  if (nconn > VB_NBD_MAXCONN)
    nconn = VB_NBD_MAXCONN;
  for (; n->nconn < nconn; n->nconn++)
    if (!(n->rh[n->nconn] = plain_handle (n->export))) {
      vb_set_error ("%s: NBD: %s", n->export, nbd_get_error ());
      goto fail;
    }
  if (nconn <= first ||
      connect_all (n->rh + first, nconn - first, socket, n->cancel) == 0)
    return 0;
  vb_prefix_error ("%s", n->export);
 fail:
  while (n->nconn > first)
    nbd_close (n->rh[--n->nconn]);
  return -1;
}

unsigned
vb_nbd_default_conns (const char *socket)
{
  return strncmp (socket, "nbds://", 7) ? VB_NBD_DEFAULT_CONN : 1;
}

void
vb_nbd_close (struct vb_nbd *n)
{
  if (!n)
    return;
  for (unsigned i = 1; i < n->nconn; i++) {
    nbd_shutdown (n->rh[i], 0);
    nbd_close (n->rh[i]);
  }
  if (n->h) {
    nbd_shutdown (n->h, 0);
    nbd_close (n->h);
  }
  free (n->export);
  free (n->dirty_ctx);
  free (n);
}
