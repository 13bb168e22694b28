/* SPDX-License-Identifier: GPL-3.0-or-later */
/* serve.h: virtback serve, an HTTP server speaking ovirt-imageio's data
 * and control APIs (libmicrohttpd; TLS through GnuTLS).
 *
 * Contract: vb_serve_start() opens every listening socket before it
 * returns, so that a failure (an address in use, an unreadable key) is
 * reported at once: the data API on LISTEN (HTTPS with CERT and KEY, else
 * plain HTTP), the control API on CONTROL_SOCKET (a unix socket, mode
 * 0600, root only) and, if LOCAL_SOCKET is given, the data API again on
 * that unix socket (advertised as "unix_socket" by OPTIONS).  Each client
 * connection has a thread of its own and, for an NBD ticket, an NBD
 * connection of its own, opened at its first request and closed with it;
 * each closing connection logs one line of statistics through vb_log().
 * A client connection reading a ticket's data takes one of its
 * max_readers slots, one writing one of its max_writers (the numbers
 * OPTIONS advertises) until it closes; a connection past them gets 503.
 * vb_serve_run() returns when *STOP is set.  vb_serve_stop() stops the
 * daemons, closes every backend and removes the sockets it made, on every
 * path (also after a failed start).  Never prints.
 */
#ifndef VB_SERVE_H
#define VB_SERVE_H

#include <signal.h>

struct vb_serve_opts {
  const char *listen;          /* "ADDR:PORT"; NULL: VB_SERVE_LISTEN */
  const char *cert, *key;      /* PEM files: HTTPS; both or neither */
  const char *ca;              /* PEM chain sent after CERT, or NULL */
  const char *control_socket;  /* NULL: VB_SERVE_CONTROL */
  const char *local_socket;    /* NULL: none */
  /* file:// tickets only for files under these directories (NULL or
   * empty: no file:// tickets).  Each is resolved with realpath() at
   * start; a ticket's path is resolved too, so no symlink or ".." leads
   * out, and the file opened is checked to be the one resolved. */
  char *const *file_dirs;
};

/* The configuration file (--config): INI, read with libinih.  Strings are
 * malloc'd; vb_serve_config_free() frees them. */
struct vb_serve_config {
  char *listen, *cert, *key, *ca, *control_socket, *local_socket;
  char **file_dirs;            /* NULL-terminated */
  size_t ndirs;
};
int vb_serve_config_load (const char *path, struct vb_serve_config *c);
void vb_serve_config_free (struct vb_serve_config *c);

#define VB_SERVE_LISTEN "0.0.0.0:54322"
#define VB_SERVE_CONTROL "/run/virtback/serve.sock"

struct vb_serve;

struct vb_serve *vb_serve_start (const struct vb_serve_opts *o);
/* The data API's base URL, as bound ("http://127.0.0.1:54322"). */
const char *vb_serve_url (const struct vb_serve *s);
void vb_serve_run (struct vb_serve *s, volatile sig_atomic_t *stop);
void vb_serve_stop (struct vb_serve *s);

#endif
