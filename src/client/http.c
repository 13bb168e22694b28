/* SPDX-License-Identifier: GPL-3.0-or-later */
/* http.c: the requests of an imageio client (http.h) on one libcurl easy
 * handle.  curl_easy_reset() between requests keeps the live connection,
 * so each worker holds one keep-alive connection for its whole run.
 * Through a local unix socket the requests go to http://localhost/PATH
 * (imageio's local service is plain HTTP); errors still name the URL the
 * user gave. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "client/http.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"

#define BODY_MAX (256u << 20)  /* an extents list of a huge, fragmented disk */
#define ERR_BODY_MAX 4096

struct vb_http {
  CURL *c;
  char *url;                   /* the user's, for messages */
  char *base, *put_url;        /* where requests go */
  char sock[VB_HTTP_SOCK_MAX]; /* a unix socket, or "" for TCP */
  size_t socklen;
  const struct vb_client_opts *o;
  char err[CURL_ERROR_SIZE];
  char *body;                  /* JSON answers and error texts */
  size_t fill, cap, max;
  long code;                   /* the answer's status, once known */
  char *dst;                   /* a ranged GET's bytes go here */
  int dfd;                     /* and on into this file, at doff */
  uint64_t doff;
  bool write_failed;           /* the error is the file's, already set */
  size_t dlen, dfill, dout;    /* dout: how much of dst is in the file */
  const char *src;             /* a PUT's body */
  size_t slen, spos;
  struct curl_slist *hdrs;
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static CURLcode init_rc;

static void
global_init (void)
{
  init_rc = curl_global_init (CURL_GLOBAL_ALL);
}

int
vb_http_global_init (void)
{
  pthread_once (&once, global_init);
  if (init_rc != CURLE_OK) {
    vb_set_error ("libcurl: %s", curl_easy_strerror (init_rc));
    return -1;
  }
  return 0;
}

struct vb_http *
vb_http_open (const char *url, const struct vb_client_opts *o)
{
  struct vb_http *h;
  size_t n = strlen (url);

  if (vb_http_global_init () < 0)
    return NULL;
  if (!(h = calloc (1, sizeof *h)))
    return vb_set_error_errno (ENOMEM, "http"), NULL;
  while (n > 0 && url[n - 1] == '/')
    n--;
  h->o = o;
  if (!(h->url = strndup (url, n)) || !(h->base = strdup (h->url))
      || asprintf (&h->put_url, "%s?flush=n", h->url) < 0
      || !(h->c = curl_easy_init ())) {
    vb_http_close (h);
    return vb_set_error_errno (ENOMEM, "libcurl"), NULL;
  }
  return h;
}

void
vb_http_close (struct vb_http *h)
{
  if (!h)
    return;
  if (h->c)
    curl_easy_cleanup (h->c);
  curl_slist_free_all (h->hdrs);
  free (h->url);
  free (h->base);
  free (h->put_url);
  free (h->body);
  free (h);
}

/* ---- callbacks ---- */

/* In pieces of 256 KiB: one large write into the page cache waits out
 * writeback throttling in one long stall. */
#define FILE_PIECE (256u << 10)
/* curl hands over at most 16 KiB per callback: written as they come,
 * that was one pwrite per 16 KiB, and ext4 then allocates small folios
 * (perf: 100,000 pwrites for 1.5 GiB, 70% of the client's time).  The
 * bytes go to the file once a megabyte of them is in. */
#define FILE_STAGE (1u << 20)

static int
write_file (int fd, const char *buf, size_t len, uint64_t off)
{
  for (size_t k; len; len -= k, off += k, buf += k)
    if (vb_pwrite_all (fd, buf, k = len < FILE_PIECE ? len : FILE_PIECE,
                       off) < 0)
      return -1;
  return 0;
}

/* The bytes of dst not yet in the file, all of them or whole stages. */
static int
stage_out (struct vb_http *h, bool all)
{
  size_t n = h->dfill - h->dout;

  if (!all)
    n -= n % FILE_STAGE;
  if (!n || write_file (h->dfd, h->dst + h->dout, n, h->doff + h->dout) < 0)
    return n ? -1 : 0;
  h->dout += n;
  return 0;
}

static long
status_now (struct vb_http *h)
{
  long code = 0;

  curl_easy_getinfo (h->c, CURLINFO_RESPONSE_CODE, &code);
  return code;
}

static size_t
on_write (char *p, size_t size, size_t nmemb, void *op)
{
  struct vb_http *h = op;
  size_t n = size * nmemb;

  if (h->dst
      && (h->code == 206 || (!h->code && (h->code = status_now (h)) == 206))) {
    if (n > h->dlen - h->dfill)
      return 0;                /* more than asked for: abort */
    memcpy (h->dst + h->dfill, p, n);
    h->dfill += n;
    if (h->dfd >= 0 && h->dfill - h->dout >= FILE_STAGE
        && stage_out (h, false) < 0) {
      h->write_failed = true;
      return 0;
    }
    return n;
  }
  if (h->fill + n > h->max)
    return 0;
  if (h->fill + n + 1 > h->cap) {
    size_t cap = (h->fill + n + 1) * 2;
    char *b = realloc (h->body, cap);

    if (!b)
      return 0;
    h->body = b, h->cap = cap;
  }
  memcpy (h->body + h->fill, p, n);
  h->fill += n;
  h->body[h->fill] = '\0';
  return n;
}

static size_t
on_read (char *p, size_t size, size_t nmemb, void *op)
{
  struct vb_http *h = op;
  size_t n = size * nmemb;

  if (n > h->slen - h->spos)
    n = h->slen - h->spos;
  memcpy (p, h->src + h->spos, n);
  h->spos += n;
  return n;
}

static int
on_progress (void *op, curl_off_t dt, curl_off_t dn, curl_off_t ut,
             curl_off_t un)
{
  struct vb_http *h = op;

  return h->o->stop && __atomic_load_n (h->o->stop, __ATOMIC_RELAXED);
}

/* ---- requests ---- */

static int
setup (struct vb_http *h, const char *url, size_t max)
{
  CURL *c = h->c;

  curl_easy_reset (c);
  curl_slist_free_all (h->hdrs);
  h->hdrs = NULL;
  h->fill = 0, h->max = max;
  h->dst = NULL, h->dlen = h->dfill = h->dout = 0;
  h->dfd = -1, h->write_failed = false;
  h->code = 0;
  h->err[0] = '\0';
  if (curl_easy_setopt (c, CURLOPT_URL, url) != CURLE_OK
      || curl_easy_setopt (c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK) {
    vb_set_error ("%s: not an http:// or https:// URL libcurl accepts", url);
    return -1;
  }
  if (h->socklen && h->sock[0] == '\0')
    curl_easy_setopt (c, CURLOPT_ABSTRACT_UNIX_SOCKET, h->sock + 1);
  else if (h->socklen)
    curl_easy_setopt (c, CURLOPT_UNIX_SOCKET_PATH, h->sock);
  curl_easy_setopt (c, CURLOPT_ERRORBUFFER, h->err);
  curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt (c, CURLOPT_WRITEDATA, h);
  curl_easy_setopt (c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt (c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt (c, CURLOPT_XFERINFODATA, h);
  curl_easy_setopt (c, CURLOPT_CONNECTTIMEOUT, 30L);
  /* A server that stops sending without closing fails the request. */
  curl_easy_setopt (c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt (c, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt (c, CURLOPT_BUFFERSIZE, 2L << 20);
  curl_easy_setopt (c, CURLOPT_UPLOAD_BUFFERSIZE, 2L << 20);
  if (h->o->cafile)
    curl_easy_setopt (c, CURLOPT_CAINFO, h->o->cafile);
  if (h->o->insecure) {
    curl_easy_setopt (c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt (c, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  return 0;
}

static int
add_header (struct vb_http *h, const char *line)
{
  struct curl_slist *l = curl_slist_append (h->hdrs, line);

  if (!l)
    return vb_set_error_errno (ENOMEM, "libcurl"), -1;
  h->hdrs = l;
  return curl_easy_setopt (h->c, CURLOPT_HTTPHEADER, h->hdrs) == CURLE_OK
    ? 0 : -1;
}

/* The first line of the body, for an error message. */
static const char *
body_line (struct vb_http *h, char *out, size_t len)
{
  size_t n = h->body ? strcspn (h->body, "\r\n") : 0;

  if (n >= len)
    n = len - 1;
  if (n)
    memcpy (out, h->body, n);
  out[n] = '\0';
  return out;
}

static int
perform (struct vb_http *h, const char *what, long want)
{
  CURLcode rc = curl_easy_perform (h->c);
  long code = status_now (h);
  char line[256];

  if (h->write_failed)
    return -1;
  if (rc == CURLE_ABORTED_BY_CALLBACK) {
    vb_set_error_code (VB_ERR_CANCELLED, 0, "%s: interrupted", h->url);
    return -1;
  }
  if (code >= 400) {
    body_line (h, line, sizeof line);
    vb_set_error ("%s: %s: HTTP %ld%s%s", h->url, what, code,
                  line[0] ? ": " : "", line);
    return -1;
  }
  if (code && code != want) {
    vb_set_error ("%s: %s: HTTP %ld instead of %ld: is this an imageio "
                  "server?", h->url, what, code, want);
    return -1;
  }
  if (rc != CURLE_OK) {
    vb_set_error ("%s: %s: %s", h->url, what,
                  h->err[0] ? h->err : curl_easy_strerror (rc));
    return -1;
  }
  return 0;
}

/* A JSON answer of a GET or OPTIONS to URL. */
static struct json_object *
get_json (struct vb_http *h, const char *url, const char *method,
          const char *what)
{
  struct json_tokener *tok;
  struct json_object *o;

  if (setup (h, url, BODY_MAX) < 0)
    return NULL;
  if (method)
    curl_easy_setopt (h->c, CURLOPT_CUSTOMREQUEST, method);
  if (perform (h, what, 200) < 0)
    return NULL;
  if (!(tok = json_tokener_new ()))
    return vb_set_error_errno (ENOMEM, "json"), NULL;
  o = h->fill ? json_tokener_parse_ex (tok, h->body, (int) h->fill) : NULL;
  if (!o || json_tokener_get_error (tok) != json_tokener_success) {
    json_object_put (o);
    o = NULL;
    vb_set_error ("%s: %s: the answer is not JSON: is this an imageio "
                  "server?", h->url, what);
  }
  json_tokener_free (tok);
  return o;
}

static unsigned
get_uint (struct json_object *o, const char *name, unsigned def)
{
  struct json_object *v;
  int64_t n;

  if (!json_object_object_get_ex (o, name, &v)
      || !json_object_is_type (v, json_type_int))
    return def;
  n = json_object_get_int64 (v);
  return n > 0 && n < 1024 ? (unsigned) n : def;
}

/* Was the last answer from this host, as oVirt's client decides it: the
 * connection's two ends have one address. */
static bool
same_host (struct vb_http *h)
{
  char *peer = NULL, *self = NULL;

  if (h->socklen)
    return true;
  return curl_easy_getinfo (h->c, CURLINFO_PRIMARY_IP, &peer) == CURLE_OK
    && curl_easy_getinfo (h->c, CURLINFO_LOCAL_IP, &self) == CURLE_OK
    && peer && self && peer[0] && !strcmp (peer, self);
}

static void
unix_socket_of (struct json_object *o, struct vb_caps *caps)
{
  struct json_object *v;
  int len;

  caps->unix_len = 0;
  if (!json_object_object_get_ex (o, "unix_socket", &v)
      || !json_object_is_type (v, json_type_string)
      || (len = json_object_get_string_len (v)) <= 0
      || (size_t) len >= sizeof caps->unix_socket)
    return;
  memcpy (caps->unix_socket, json_object_get_string (v), (size_t) len);
  caps->unix_socket[len] = '\0';
  caps->unix_len = (size_t) len;
}

/* Requests go to BASE (and its ?flush=n for PUT) from now on. */
static int
rebase (struct vb_http *h, const char *base)
{
  char *b = strdup (base), *p = NULL;

  if (!b || asprintf (&p, "%s?flush=n", b) < 0) {
    free (b);
    return vb_set_error_errno (ENOMEM, "url"), -1;
  }
  free (h->base);
  free (h->put_url);
  h->base = b, h->put_url = p;
  return 0;
}

int
vb_http_options (struct vb_http *h, struct vb_caps *caps)
{
  struct json_object *o = get_json (h, h->base, "OPTIONS", "OPTIONS"), *f;

  if (!o)
    return -1;
  memset (caps, 0, sizeof *caps);
  if (json_object_object_get_ex (o, "features", &f)
      && json_object_is_type (f, json_type_array))
    for (size_t i = 0; i < json_object_array_length (f); i++) {
      const char *s = json_object_get_string (json_object_array_get_idx (f, i));

      caps->extents |= s && !strcmp (s, "extents");
      caps->zero |= s && !strcmp (s, "zero");
      caps->flush |= s && !strcmp (s, "flush");
    }
  /* imageio before max_readers/max_writers allowed one of each. */
  caps->max_readers = get_uint (o, "max_readers", 1);
  caps->max_writers = get_uint (o, "max_writers", 1);
  caps->local = same_host (h);
  unix_socket_of (o, caps);
  json_object_put (o);
  return 0;
}

/* Requests go through unix socket SOCK (LEN bytes; a leading NUL names an
 * abstract socket, as imageio's daemon does), or over TCP again when LEN
 * is 0. */
int
vb_http_use_socket (struct vb_http *h, const char *sock, size_t len)
{
  CURLU *u;
  char *s = NULL;
  int r;

  if (!len) {
    h->socklen = 0, h->sock[0] = '\0';
    return rebase (h, h->url);
  }
  if (len >= sizeof h->sock) {
    vb_set_error ("%s: its unix socket name is too long", h->url);
    return -1;
  }
  if (!(u = curl_url ()) || curl_url_set (u, CURLUPART_URL, h->url, 0)
      || curl_url_set (u, CURLUPART_SCHEME, "http", 0)
      || curl_url_set (u, CURLUPART_HOST, "localhost", 0)
      || curl_url_set (u, CURLUPART_PORT, NULL, 0)
      || curl_url_set (u, CURLUPART_USER, NULL, 0)
      || curl_url_set (u, CURLUPART_PASSWORD, NULL, 0)
      || curl_url_get (u, CURLUPART_URL, &s, 0)) {
    curl_url_cleanup (u);
    vb_set_error ("%s: not a URL libcurl can rewrite for a unix socket",
                  h->url);
    return -1;
  }
  curl_url_cleanup (u);
  if ((r = rebase (h, s)) == 0) {
    memcpy (h->sock, sock, len);
    h->sock[len] = '\0', h->socklen = len;
  }
  curl_free (s);
  return r;
}

static int
ext_u64 (struct json_object *e, const char *name, uint64_t *out)
{
  struct json_object *v;
  int64_t n;

  if (!json_object_object_get_ex (e, name, &v)
      || !json_object_is_type (v, json_type_int)
      || (n = json_object_get_int64 (v)) < 0)
    return -1;
  *out = (uint64_t) n;
  return 0;
}

static bool
ext_bool (struct json_object *e, const char *name)
{
  struct json_object *v;

  return json_object_object_get_ex (e, name, &v) && json_object_get_boolean (v);
}

static struct vb_rext *
extents_of (struct json_object *l, bool dirty, size_t *n)
{
  size_t len = json_object_array_length (l);
  struct vb_rext *v = calloc (len ? len : 1, sizeof *v);
  uint64_t end = 0;

  if (!v)
    return vb_set_error_errno (ENOMEM, "extents"), NULL;
  for (size_t i = 0; i < len; i++) {
    struct json_object *e = json_object_array_get_idx (l, i);

    if (!json_object_is_type (e, json_type_object)
        || ext_u64 (e, "start", &v[i].off) < 0
        || ext_u64 (e, "length", &v[i].len) < 0
        || v[i].off != end || v[i].len == 0 || v[i].off + v[i].len < end) {
      free (v);
      vb_set_error ("extent %zu is not a start and length following the "
                    "one before", i);
      return NULL;
    }
    v[i].zero = ext_bool (e, "zero");
    v[i].dirty = dirty ? ext_bool (e, "dirty") : true;
    end = v[i].off + v[i].len;
  }
  *n = len;
  return v;
}

struct vb_rext *
vb_http_parse_extents (const char *json, size_t len, bool dirty, size_t *n)
{
  struct json_tokener *tok = json_tokener_new ();
  struct json_object *o;
  struct vb_rext *v = NULL;

  if (!tok)
    return vb_set_error_errno (ENOMEM, "json"), NULL;
  o = json_tokener_parse_ex (tok, json, (int) len);
  if (!o || json_tokener_get_error (tok) != json_tokener_success
      || !json_object_is_type (o, json_type_array))
    vb_set_error ("the extents are not a JSON list");
  else
    v = extents_of (o, dirty, n);
  json_object_put (o);
  json_tokener_free (tok);
  return v;
}

struct vb_rext *
vb_http_extents (struct vb_http *h, bool dirty, size_t *n)
{
  CLEANUP_FREE char *url = NULL;
  struct json_object *o;
  struct vb_rext *v = NULL;

  if (asprintf (&url, "%s/extents?context=%s", h->base,
                dirty ? "dirty" : "zero") < 0)
    return vb_set_error_errno (ENOMEM, "url"), NULL;
  if (!(o = get_json (h, url, NULL, "GET extents")))
    return NULL;
  if (!json_object_is_type (o, json_type_array))
    vb_set_error ("%s: the extents are not a JSON list", h->url);
  else if (!(v = extents_of (o, dirty, n)))
    vb_prefix_error ("%s: GET extents", h->url);
  json_object_put (o);
  return v;
}

static int
get_range (struct vb_http *h, void *buf, int fd, size_t len, uint64_t off)
{
  char range[80];

  if (setup (h, h->base, ERR_BODY_MAX) < 0)
    return -1;
  snprintf (range, sizeof range, "Range: bytes=%" PRIu64 "-%" PRIu64, off,
            off + len - 1);
  if (add_header (h, range) < 0)
    return -1;
  h->dst = buf, h->dfd = fd, h->doff = off, h->dlen = len;
  if (perform (h, "GET", 206) < 0)
    return -1;
  if (h->dfill != len) {
    vb_set_error ("%s: GET at %" PRIu64 ": %zu bytes instead of %zu", h->url,
                  off, h->dfill, len);
    return -1;
  }
  return fd >= 0 ? stage_out (h, true) : 0;
}

int
vb_http_get (struct vb_http *h, void *buf, size_t len, uint64_t off)
{
  return get_range (h, buf, -1, len, off);
}

int
vb_http_get_fd (struct vb_http *h, int fd, void *buf, size_t len,
                uint64_t off)
{
  return get_range (h, buf, fd, len, off);
}

int
vb_http_put (struct vb_http *h, const void *buf, size_t len, uint64_t off)
{
  char range[80];

  if (setup (h, h->put_url, ERR_BODY_MAX) < 0)
    return -1;
  snprintf (range, sizeof range, "Content-Range: bytes %" PRIu64 "-%" PRIu64
            "/*", off, off + len - 1);
  if (add_header (h, range) < 0)
    return -1;
  h->src = buf, h->slen = len, h->spos = 0;
  curl_easy_setopt (h->c, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt (h->c, CURLOPT_READFUNCTION, on_read);
  curl_easy_setopt (h->c, CURLOPT_READDATA, h);
  curl_easy_setopt (h->c, CURLOPT_INFILESIZE_LARGE, (curl_off_t) len);
  return perform (h, "PUT", 200);
}

static int
patch (struct vb_http *h, struct json_object *o, const char *what)
{
  const char *s = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN);
  int r = -1;

  if (setup (h, h->base, ERR_BODY_MAX) == 0
      && add_header (h, "Content-Type: application/json") == 0) {
    curl_easy_setopt (h->c, CURLOPT_CUSTOMREQUEST, "PATCH");
    curl_easy_setopt (h->c, CURLOPT_POSTFIELDSIZE, (long) strlen (s));
    curl_easy_setopt (h->c, CURLOPT_COPYPOSTFIELDS, s);
    r = perform (h, what, 200);
  }
  json_object_put (o);
  return r;
}

int
vb_http_zero (struct vb_http *h, uint64_t off, uint64_t len)
{
  struct json_object *o = json_object_new_object ();

  json_object_object_add (o, "op", json_object_new_string ("zero"));
  json_object_object_add (o, "offset", json_object_new_int64 ((int64_t) off));
  json_object_object_add (o, "size", json_object_new_int64 ((int64_t) len));
  json_object_object_add (o, "flush", json_object_new_boolean (false));
  return patch (h, o, "PATCH zero");
}

int
vb_http_flush (struct vb_http *h)
{
  struct json_object *o = json_object_new_object ();

  json_object_object_add (o, "op", json_object_new_string ("flush"));
  return patch (h, o, "PATCH flush");
}
