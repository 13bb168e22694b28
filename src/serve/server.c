/* SPDX-License-Identifier: GPL-3.0-or-later */
/* server.c: the daemons of virtback serve (serve.h): libmicrohttpd with a
 * thread per connection on sockets made here (TCP for the data API, unix
 * sockets for the control API and the local data service), the replies
 * every part shares, and each connection's closing line of statistics. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "serve/internal.h"
#include "serve/serve.h"

#define SERVER_HEADER "imageio/virtback-" VB_VERSION
#define MAX_CONNECTIONS 64
#define MEMORY_LIMIT (64u << 10)   /* per connection: headers, request line */
#define IDLE_TIMEOUT 600

/* ---- replies ---- */

enum MHD_Result
vb_srv_reply (struct MHD_Connection *c, unsigned status, const char *type,
              const char *body, size_t len)
{
  struct MHD_Response *resp;
  enum MHD_Result ret;

  resp = MHD_create_response_from_buffer (len, (void *) body,
                                          MHD_RESPMEM_MUST_COPY);
  if (!resp)
    return MHD_NO;
  MHD_add_response_header (resp, "Server", SERVER_HEADER);
  if (type)
    MHD_add_response_header (resp, "Content-Type", type);
  ret = MHD_queue_response (c, status, resp);
  MHD_destroy_response (resp);
  return ret;
}

enum MHD_Result
vb_srv_error (struct MHD_Connection *c, unsigned status, const char *msg,
              bool close)
{
  struct MHD_Response *resp;
  enum MHD_Result ret;
  char line[VB_ERRMAX + 2];
  size_t n;

  /* One line, whatever the message held. */
  snprintf (line, sizeof line - 1, "%s", msg);
  for (char *p = line; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  n = strlen (line);
  line[n++] = '\n';
  resp = MHD_create_response_from_buffer (n, line, MHD_RESPMEM_MUST_COPY);
  if (!resp)
    return MHD_NO;
  MHD_add_response_header (resp, "Server", SERVER_HEADER);
  MHD_add_response_header (resp, "Content-Type", "text/plain; charset=UTF-8");
  if (close)
    MHD_add_response_header (resp, "Connection", "close");
  ret = MHD_queue_response (c, status, resp);
  MHD_destroy_response (resp);
  return ret;
}

enum MHD_Result
vb_srv_json (struct MHD_Connection *c, unsigned status, struct json_object *o,
             const char *allow)
{
  const char *s = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN
                                                  | JSON_C_TO_STRING_NOSLASHESCAPE);
  struct MHD_Response *resp;
  enum MHD_Result ret;

  resp = MHD_create_response_from_buffer (strlen (s), (void *) s,
                                          MHD_RESPMEM_MUST_COPY);
  json_object_put (o);
  if (!resp)
    return MHD_NO;
  MHD_add_response_header (resp, "Server", SERVER_HEADER);
  MHD_add_response_header (resp, "Content-Type", "application/json");
  if (allow)
    MHD_add_response_header (resp, "Allow", allow);
  ret = MHD_queue_response (c, status, resp);
  MHD_destroy_response (resp);
  return ret;
}

/* ---- connections ---- */

void
vb_sconn_stat (struct vb_sconn *sc, int which, double t0, uint64_t bytes)
{
  sc->st[which].ops++;
  sc->st[which].secs += vb_now () - t0;
  sc->st[which].bytes += bytes;
}

static void
client_name (struct MHD_Connection *c, char *out, size_t len)
{
  const union MHD_ConnectionInfo *ci =
    MHD_get_connection_info (c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  const struct sockaddr *sa = ci ? ci->client_addr : NULL;
  char host[64] = "local";

  if (sa && sa->sa_family == AF_INET)
    inet_ntop (AF_INET, &((const struct sockaddr_in *) sa)->sin_addr, host,
               sizeof host);
  else if (sa && sa->sa_family == AF_INET6)
    inet_ntop (AF_INET6, &((const struct sockaddr_in6 *) sa)->sin6_addr, host,
               sizeof host);
  snprintf (out, len, "%s", host);
}

static size_t
stat_text (char *p, size_t cap, const char *name, const struct vb_stat *s,
           bool bytes)
{
  double mib = (double) s->bytes / (1 << 20);

  if (!bytes)
    return (size_t) snprintf (p, cap, " [%s %llu ops, %.6f s]", name,
                              (unsigned long long) s->ops, s->secs);
  return (size_t) snprintf (p, cap, " [%s %llu ops, %.6f s, %.2f MiB, "
                            "%.2f MiB/s]", name, (unsigned long long) s->ops,
                            s->secs, mib, s->secs > 0 ? mib / s->secs : 0);
}

/* Seed 002's CLOSE line: each kind of operation the connection did. */
static void
log_close (struct vb_sconn *sc)
{
  static const char *const names[VB_ST_N] = {
    "dispatch", "extents", "read", "write", "zero", "flush", "checksum",
  };
  struct vb_stat conn = { 1, 0, vb_now () - sc->start };
  char line[1024];
  size_t n = (size_t) snprintf (line, sizeof line, "CLOSE client=%s",
                                sc->client);

  n += stat_text (line + n, sizeof line - n, "connection", &conn, false);
  for (int i = 0; i < VB_ST_N && n < sizeof line; i++)
    if (sc->st[i].ops)
      n += stat_text (line + n, sizeof line - n, names[i], &sc->st[i],
                      i == VB_ST_READ || i == VB_ST_WRITE || i == VB_ST_ZERO);
  vb_info ("%s", line);
}

static void
notify_connection (void *cls, struct MHD_Connection *c, void **ctx,
                   enum MHD_ConnectionNotificationCode code)
{
  const struct vb_listener *l = cls;
  struct vb_sconn *sc = *ctx;

  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    if (!(sc = calloc (1, sizeof *sc)))
      return;
    sc->srv = l->srv;
    sc->start = vb_now ();
    sc->local = l->local;
    client_name (c, sc->client, sizeof sc->client);
    *ctx = sc;
    return;
  }
  if (!sc)
    return;
  log_close (sc);
  vb_sconn_release (sc);
  if (sc->b) {
    vb_ticket_connection (sc->t, -1);
    vb_backend_unref (sc->b);
    vb_ticket_unref (NULL, sc->t);
  }
  free (sc);
  *ctx = NULL;
}

static void
mhd_log (void *cls, const char *fmt, va_list ap)
{
  char msg[512];

  vsnprintf (msg, sizeof msg, fmt, ap);
  msg[strcspn (msg, "\n")] = '\0';
  vb_debug ("libmicrohttpd: %s", msg);
}

/* ---- sockets ---- */

/* "ADDR:PORT" or "[ADDR6]:PORT" into HOST and PORT. */
static int
split_listen (const char *spec, char host[256], char port[16])
{
  const char *colon = strrchr (spec, ':');
  size_t n;

  if (!colon || !colon[1] || strlen (colon + 1) > 5)
    goto bad;
  n = (size_t) (colon - spec);
  if (n >= 2 && spec[0] == '[' && spec[n - 1] == ']')
    spec++, n -= 2;
  if (n == 0 || n >= 256)
    goto bad;
  memcpy (host, spec, n);
  host[n] = '\0';
  strcpy (port, colon + 1);
  return 0;
 bad:
  vb_set_error ("--listen %s: give ADDR:PORT, such as 127.0.0.1:54322", spec);
  return -1;
}

static int
tcp_listen (const char *spec, char **url, bool tls)
{
  struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV
                            | AI_NUMERICHOST, .ai_socktype = SOCK_STREAM };
  struct addrinfo *ai;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char host[256], port[16], sport[16];
  int fd, one = 1, e;

  if (split_listen (spec, host, port) < 0)
    return -1;
  if ((e = getaddrinfo (host, port, &hints, &ai)) != 0) {
    vb_set_error ("--listen %s: %s", spec, gai_strerror (e));
    return -1;
  }
  fd = socket (ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  /* Accepted sockets inherit TCP_NODELAY: without it the last segment of
   * each ranged answer waits for the client's delayed ACK (40 ms). */
  if (fd < 0 || setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one)
      || setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one)
      || bind (fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen (fd, 128) < 0
      || getsockname (fd, (struct sockaddr *) &ss, &sl) < 0) {
    vb_set_error_errno (errno, "--listen %s", spec);
    freeaddrinfo (ai);
    if (fd >= 0)
      close (fd);
    return -1;
  }
  freeaddrinfo (ai);
  getnameinfo ((struct sockaddr *) &ss, sl, NULL, 0, sport, sizeof sport,
               NI_NUMERICSERV);
  if (asprintf (url, "%s://%s%s%s:%s", tls ? "https" : "http",
                strchr (host, ':') ? "[" : "", host,
                strchr (host, ':') ? "]" : "", sport) < 0) {
    close (fd);
    return vb_set_error_errno (ENOMEM, "url"), -1;
  }
  return fd;
}

/* A unix socket at PATH, mode 0600; a stale socket there is replaced,
 * anything else is refused. */
static int
unix_listen (const char *path, char **made)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  CLEANUP_FREE char *dir = strdup (path);
  struct stat st;
  mode_t old;
  int fd;

  if (!dir || strlen (path) >= sizeof sa.sun_path) {
    vb_set_error ("%s: a socket path must be shorter than %zu bytes", path,
                  sizeof sa.sun_path);
    return -1;
  }
  if (strrchr (dir, '/') && strrchr (dir, '/') != dir) {
    *strrchr (dir, '/') = '\0';
    if (vb_mkdir_p (dir, 0700) < 0)
      return -1;
  }
  if (lstat (path, &st) == 0 && !S_ISSOCK (st.st_mode)) {
    vb_set_error ("%s exists and is no socket: give another path", path);
    return -1;
  }
  unlink (path);
  strcpy (sa.sun_path, path);
  if ((fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
    return vb_set_error_errno (errno, "socket"), -1;
  old = umask (0177);
  if (bind (fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
    umask (old);
    close (fd);
    return vb_set_error_errno (errno, "%s", path), -1;
  }
  umask (old);
  if (!(*made = strdup (path)) || chmod (path, 0600) < 0 || listen (fd, 64) < 0) {
    close (fd);
    return vb_set_error_errno (errno ? errno : ENOMEM, "%s", path), -1;
  }
  return fd;
}

/* ---- daemons ---- */

static struct MHD_Daemon *
start_data (struct vb_serve *s, int fd, struct vb_listener *l, bool tls)
{
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL
    | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG
    | (tls ? MHD_USE_TLS : 0);
  struct MHD_OptionItem tlsopts[] = {
    { tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, s->key },
    { MHD_OPTION_HTTPS_MEM_CERT, 0, s->cert },
    { MHD_OPTION_END, 0, NULL },
  };
  struct MHD_Daemon *d;

  d = MHD_start_daemon (flags, 0, NULL, NULL, vb_images_handler, s,
    MHD_OPTION_LISTEN_SOCKET, fd,
    MHD_OPTION_URI_LOG_CALLBACK, vb_srv_uri_log, s,
    MHD_OPTION_NOTIFY_CONNECTION, notify_connection, l,
    MHD_OPTION_NOTIFY_COMPLETED, vb_images_completed, s,
    MHD_OPTION_CONNECTION_LIMIT, (unsigned) MAX_CONNECTIONS,
    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) MEMORY_LIMIT,
    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) IDLE_TIMEOUT,
    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
    MHD_OPTION_ARRAY, tlsopts,
    MHD_OPTION_END);
  if (!d)
    vb_set_error ("the HTTP server does not start (libmicrohttpd)%s",
                  tls ? ": check --cert and --key" : "");
  return d;
}

static struct MHD_Daemon *
start_control (struct vb_serve *s, int fd)
{
  struct MHD_Daemon *d;

  d = MHD_start_daemon (MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL
                        | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG,
    0, NULL, NULL, vb_control_handler, s,
    MHD_OPTION_LISTEN_SOCKET, fd,
    MHD_OPTION_NOTIFY_COMPLETED, vb_control_completed, s,
    MHD_OPTION_CONNECTION_LIMIT, 16u,
    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) MEMORY_LIMIT,
    MHD_OPTION_CONNECTION_TIMEOUT, 60u,
    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
    MHD_OPTION_END);
  if (!d)
    vb_set_error ("the control server does not start (libmicrohttpd)");
  return d;
}

static int
load_tls (struct vb_serve *s, const struct vb_serve_opts *o)
{
  CLEANUP_FREE char *cert = NULL, *ca = NULL;

  if (!o->cert)
    return 0;
  if (!(cert = vb_read_file (o->cert, NULL))
      || !(s->key = vb_read_file (o->key, NULL))
      || (o->ca && !(ca = vb_read_file (o->ca, NULL))))
    return -1;
  if (asprintf (&s->cert, "%s%s%s", cert,
                cert[0] && cert[strlen (cert) - 1] != '\n' ? "\n" : "",
                ca ? ca : "") < 0) {
    s->cert = NULL;
    return vb_set_error_errno (ENOMEM, "certificate"), -1;
  }
  return 0;
}

static int
start_all (struct vb_serve *s, const struct vb_serve_opts *o)
{
  bool tls = o->cert != NULL;
  int fd;

  if (load_tls (s, o) < 0 || !(s->tickets = vb_tickets_new ())
      || vb_tickets_allow_dirs (s->tickets, o->file_dirs) < 0)
    return -1;
  if ((fd = unix_listen (o->control_socket ? o->control_socket
                         : VB_SERVE_CONTROL, &s->control_path)) < 0
      || !(s->control = start_control (s, fd)))
    return -1;
  if (o->local_socket
      && ((fd = unix_listen (o->local_socket, &s->local_path)) < 0
          || !(s->local = start_data (s, fd, &s->on_local, false))))
    return -1;
  if ((fd = tcp_listen (o->listen ? o->listen : VB_SERVE_LISTEN, &s->url,
                        tls)) < 0
      || !(s->data = start_data (s, fd, &s->on_data, tls)))
    return -1;
  return 0;
}

struct vb_serve *
vb_serve_start (const struct vb_serve_opts *o)
{
  struct vb_serve *s = calloc (1, sizeof *s);

  if (!s)
    return vb_set_error_errno (ENOMEM, "serve"), NULL;
  s->on_data = (struct vb_listener) { s, false };
  s->on_local = (struct vb_listener) { s, true };
  if (!o->cert != !o->key) {
    vb_set_error ("give both --cert and --key, or neither");
    free (s);
    return NULL;
  }
  if (start_all (s, o) < 0) {
    struct vb_error e;

    vb_error_save (&e);
    vb_serve_stop (s);
    vb_error_restore (&e);
    return NULL;
  }
  return s;
}

const char *
vb_serve_url (const struct vb_serve *s)
{
  return s->url;
}

void
vb_serve_run (struct vb_serve *s, volatile sig_atomic_t *stop)
{
  while (!__atomic_load_n (stop, __ATOMIC_RELAXED))
    usleep (100 * 1000);
}

void
vb_serve_stop (struct vb_serve *s)
{
  if (!s)
    return;
  if (s->data)
    MHD_stop_daemon (s->data);
  if (s->local)
    MHD_stop_daemon (s->local);
  if (s->control)
    MHD_stop_daemon (s->control);
  if (s->control_path)
    unlink (s->control_path);
  if (s->local_path)
    unlink (s->local_path);
  vb_tickets_free (s->tickets);
  free (s->control_path);
  free (s->local_path);
  free (s->cert);
  free (s->key);
  free (s->url);
  free (s);
}
