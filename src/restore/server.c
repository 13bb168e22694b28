/* SPDX-License-Identifier: GPL-3.0-or-later */
/* server.c: the qemu-nbd a restore writes through.  See internal.h.  It
 * goes through the shared helpers (nbd/qemu_nbd.h, or remote/remote.h on
 * another host): the child is ours, we wait for it and kill it, and it
 * never outlives virtback. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxml/uri.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "restore/internal.h"

/* Writes in flight: 16 requests of 2 MiB (32 MiB of buffers). */
#define NBUFS 16
#define BUFSIZE (2u << 20)

struct vb_nbd_writer *
vb_server_start (struct vb_server *s, const char *image, const char *format,
                 volatile sig_atomic_t *cancel)
{
  static const char *const extra[] = {
    "--cache=writeback", "--aio=threads", "--discard=unmap",
    "--detect-zeroes=unmap", NULL,
  };
  const char *tmp = getenv ("TMPDIR");
  CLEANUP_FREE char *sock = NULL;
  struct vb_nbd_writer *w;

  memset (s, 0, sizeof *s);
  if (asprintf (&s->dir, "%s/virtback-restore.XXXXXX", tmp ? tmp : "/tmp") < 0)
    s->dir = NULL;
  if (!s->dir || !mkdtemp (s->dir)) {
    vb_set_error_errno (errno, "create a private socket directory");
    free (s->dir);
    s->dir = NULL;
    return NULL;
  }
  struct vb_qemu_nbd_opts qo = {
    .image = image, .format = format, .export = "", .extra = extra,
    .cancel = cancel,
  };
  if (!(sock = vb_path_join (s->dir, "nbd.sock")))
    goto err;
  qo.sock = sock;
  if (vb_qemu_nbd_start (&s->q, &qo) < 0)
    goto err;
  if ((w = vb_nbd_writer_open (s->q.sock, NBUFS, BUFSIZE, cancel))) {
    vb_nbd_writer_set_target (w, image);
    return w;
  }
 err:
  {
    CLEANUP_FREE char *msg = strdup (vb_get_error ());
    vb_server_stop (s);
    vb_set_error ("NBD server for %s: %s", image, msg ? msg : "failed");
  }
  return NULL;
}

/* The writer's options for a remote image: as the local ones. */
static const char *const remote_extra[] = {
  "--cache=writeback", "--aio=threads", "--discard=unmap",
  "--detect-zeroes=unmap", NULL,
};

static char *
tcp_addr (const struct vb_rnbd_opts *ro, int port, const char *tls_dir)
{
  bool v6 = strchr (ro->addr, ':') != NULL;
  xmlChar *e = ro->tls_dir ? xmlURIEscapeStr (BAD_CAST tls_dir, BAD_CAST "/")
                           : NULL;
  char *a;

  if (asprintf (&a, "%s://%s%s%s:%d%s%s", ro->tls_dir ? "nbds" : "nbd",
                v6 ? "[" : "", ro->addr, v6 ? "]" : "", port,
                e ? "?tls-certificates=" : "", e ? (char *) e : "") < 0)
    a = NULL;
  xmlFree (e);
  return a;
}

struct vb_nbd_writer *
vb_server_start_remote (struct vb_server *s, const struct vb_remote *r,
                        const struct vb_rnbd_opts *ro, const char *tls_dir)
{
  struct vb_rnbd_opts o = *ro;
  struct vb_nbd_writer *w;

  memset (s, 0, sizeof *s);
  o.extra = remote_extra;
  o.export = "";
  if (vb_rnbd_start (r, &s->rq, &o) < 0)
    goto err;
  if (!(s->addr = tcp_addr (&o, s->rq.port, tls_dir))) {
    vb_set_error ("out of memory");
    goto err;
  }
  if ((w = vb_nbd_writer_open (s->addr, NBUFS, BUFSIZE, o.cancel))) {
    vb_nbd_writer_set_target (w, o.image);
    return w;
  }
 err:
  {
    CLEANUP_FREE char *msg = strdup (vb_get_error ());
    vb_server_stop (s);
    vb_set_error ("NBD server for %s on host %s: %s", o.image, r->host,
                  msg ? msg : "failed");
  }
  return NULL;
}

void
vb_server_stop (struct vb_server *s)
{
  vb_rnbd_stop (&s->rq);
  free (s->addr);
  s->addr = NULL;
  vb_qemu_nbd_stop (&s->q);
  if (s->dir)
    rmdir (s->dir);
  free (s->dir);
  s->dir = NULL;
}
