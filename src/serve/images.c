/* SPDX-License-Identifier: GPL-3.0-or-later */
/* images.c: the data API of virtback serve, /images/TICKET and /info/,
 * as ovirt-imageio's daemon answers it (../shared/notes/imageio-api.md):
 * OPTIONS, GET (whole or one range), PUT (Content-Range, flush=y|n),
 * PATCH zero and flush, extents, checksum.  Runs in the connection's own
 * thread; the connection's backend (struct vb_sconn) is opened at its
 * first request for a ticket and kept for the requests that follow. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "serve/internal.h"

#define PUT_BUF (4u << 20)
#define READ_BLOCK (4u << 20)   /* per streaming answer, read ahead */
#define DEFAULT_BLOCK (4u << 20)

enum rq_kind { RQ_NONE, RQ_PUT, RQ_PATCH };

/* One request; made by vb_srv_uri_log before MHD parses anything. */
struct rq {
  size_t urilen;
  enum rq_kind kind;
  struct vb_ticket *t;
  struct vb_sconn *sc;
  bool dispatched;             /* first_call done */
  bool begun;                  /* vb_ticket_begin done */
  uint64_t off, left;          /* PUT: where the next byte goes */
  bool flush;
  char *buf;
  size_t fill, cap;
  char *fail;                  /* the first error of an upload */
  unsigned fail_status;
  uint64_t bytes;
};

void *
vb_srv_uri_log (void *cls, const char *uri, struct MHD_Connection *c)
{
  struct rq *r = calloc (1, sizeof *r);

  if (r)
    r->urilen = strlen (uri);
  return r;
}

static void
rq_free (struct rq *r)
{
  if (!r)
    return;
  if (r->begun)
    vb_ticket_end (r->t, r->off, r->bytes);
  if (r->t)
    vb_ticket_unref (NULL, r->t);
  free (r->buf);
  free (r->fail);
  free (r);
}

void
vb_images_completed (void *cls, struct MHD_Connection *c, void **rqp,
                     enum MHD_RequestTerminationCode toe)
{
  rq_free (*rqp);
  *rqp = NULL;
}

static struct vb_sconn *
sconn_of (struct MHD_Connection *c)
{
  const union MHD_ConnectionInfo *ci =
    MHD_get_connection_info (c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

  return ci ? ci->socket_context : NULL;
}

static const char *
arg (struct MHD_Connection *c, const char *name)
{
  return MHD_lookup_connection_value (c, MHD_GET_ARGUMENT_KIND, name);
}

static const char *
header (struct MHD_Connection *c, const char *name)
{
  return MHD_lookup_connection_value (c, MHD_HEADER_KIND, name);
}

/* The connection's backend for T, opened on first use. */
static struct vb_backend *
backend (struct vb_sconn *sc, struct vb_ticket *t)
{
  if (sc->b && sc->t == t)
    return sc->b;
  if (sc->b) {
    vb_sconn_release (sc);
    vb_ticket_connection (sc->t, -1);
    vb_backend_unref (sc->b);
    vb_ticket_unref (NULL, sc->t);
    sc->b = NULL, sc->t = NULL;
  }
  if (!(sc->b = vb_backend_open (t)))
    return NULL;
  __atomic_add_fetch (&t->refs, 1, __ATOMIC_SEQ_CST);
  sc->t = t;
  vb_ticket_connection (t, 1);
  return sc->b;
}

void
vb_sconn_release (struct vb_sconn *sc)
{
  if (!sc->t || (!sc->reader && !sc->writer))
    return;
  pthread_mutex_lock (&sc->t->lock);
  sc->t->readers -= sc->reader;
  sc->t->writers -= sc->writer;
  pthread_mutex_unlock (&sc->t->lock);
  sc->reader = sc->writer = false;
}

/* A reader's or writer's slot on T for the connection (its backend is
 * open for T), up to what OPTIONS advertises; -1 past it. */
static int
claim (struct vb_sconn *sc, struct vb_ticket *t, bool write)
{
  int max = write ? vb_backend_max_writers (t->kind) : VB_SERVE_MAX_READERS;
  bool *held = write ? &sc->writer : &sc->reader;
  int *count = write ? &t->writers : &t->readers;
  bool ok;

  if (*held)
    return 0;
  pthread_mutex_lock (&t->lock);
  if ((ok = *count < max))
    (*count)++;
  pthread_mutex_unlock (&t->lock);
  *held = ok;
  return ok ? 0 : -1;
}

/* The backend of T with a reader's or writer's slot, or a queued error
 * (*RET) and NULL. */
static struct vb_backend *
backend_slot (struct MHD_Connection *c, struct vb_sconn *sc,
              struct vb_ticket *t, bool write, enum MHD_Result *ret)
{
  struct vb_backend *b = backend (sc, t);
  char msg[256];

  if (!b) {
    *ret = vb_srv_error (c, MHD_HTTP_INTERNAL_SERVER_ERROR, vb_get_error (),
                         false);
    return NULL;
  }
  if (claim (sc, t, write) == 0)
    return b;
  snprintf (msg, sizeof msg, "Ticket %s has %d %s connections already, as "
            "many as OPTIONS allows: use fewer", t->uuid,
            write ? vb_backend_max_writers (t->kind) : VB_SERVE_MAX_READERS,
            write ? "writing" : "reading");
  *ret = vb_srv_error (c, MHD_HTTP_SERVICE_UNAVAILABLE, msg, true);
  return NULL;
}

static enum MHD_Result
backend_error (struct MHD_Connection *c)
{
  return vb_srv_error (c, MHD_HTTP_INTERNAL_SERVER_ERROR, vb_get_error (),
                       false);
}

static enum MHD_Result
unsatisfiable (struct MHD_Connection *c, uint64_t size, const char *msg)
{
  struct MHD_Response *resp;
  char cr[64], body[256];
  enum MHD_Result ret;

  snprintf (cr, sizeof cr, "bytes */%" PRIu64, size);
  snprintf (body, sizeof body, "%s\n", msg);
  resp = MHD_create_response_from_buffer (strlen (body), body,
                                          MHD_RESPMEM_MUST_COPY);
  if (!resp)
    return MHD_NO;
  MHD_add_response_header (resp, "Server", "imageio/virtback-" VB_VERSION);
  MHD_add_response_header (resp, "Content-Type", "text/plain; charset=UTF-8");
  MHD_add_response_header (resp, "Content-Range", cr);
  ret = MHD_queue_response (c, MHD_HTTP_RANGE_NOT_SATISFIABLE, resp);
  MHD_destroy_response (resp);
  return ret;
}

/* ---- OPTIONS ---- */

static struct json_object *
features (bool write)
{
  struct json_object *f = json_object_new_array ();

  json_object_array_add (f, json_object_new_string ("checksum"));
  json_object_array_add (f, json_object_new_string ("extents"));
  if (write) {
    json_object_array_add (f, json_object_new_string ("flush"));
    json_object_array_add (f, json_object_new_string ("zero"));
  }
  return f;
}

static enum MHD_Result
do_options (struct MHD_Connection *c, struct vb_ticket *t)
{
  struct json_object *o = json_object_new_object ();
  struct vb_sconn *sc = sconn_of (c);

  json_object_object_add (o, "features", features (!t || t->may_write));
  if (!t)
    return vb_srv_json (c, MHD_HTTP_OK, o, "OPTIONS,GET,PUT,PATCH");
  json_object_object_add (o, "max_readers",
                          json_object_new_int (VB_SERVE_MAX_READERS));
  json_object_object_add (o, "max_writers", json_object_new_int (
    vb_backend_max_writers (t->kind)));
  if (sc && sc->srv->local_path && !sc->local)
    json_object_object_add (o, "unix_socket",
                            json_object_new_string (sc->srv->local_path));
  return vb_srv_json (c, MHD_HTTP_OK, o,
                      t->may_write ? "OPTIONS,GET,PUT,PATCH" : "OPTIONS,GET");
}

/* ---- GET extents ---- */

struct ext_acc {
  struct json_object *list;
  bool dirty;
  uint64_t off, len;
  unsigned flags;
};

static void
ext_emit (struct ext_acc *a)
{
  struct json_object *e;

  if (!a->len)
    return;
  e = json_object_new_object ();
  json_object_object_add (e, "start", json_object_new_int64 ((int64_t) a->off));
  json_object_object_add (e, "length", json_object_new_int64 ((int64_t) a->len));
  if (a->dirty)
    json_object_object_add (e, "dirty", json_object_new_boolean (
      a->flags & VB_EXT_F_DIRTY));
  json_object_object_add (e, "zero", json_object_new_boolean (
    a->flags & VB_EXT_F_ZERO));
  if (!a->dirty)
    json_object_object_add (e, "hole", json_object_new_boolean (
      a->flags & VB_EXT_F_HOLE));
  json_object_array_add (a->list, e);
}

static int
ext_cb (void *op, uint64_t off, uint64_t len, unsigned flags)
{
  struct ext_acc *a = op;

  if (!a->dirty)
    flags &= ~VB_EXT_F_DIRTY;
  else
    flags &= ~VB_EXT_F_HOLE;
  if (a->len && flags == a->flags && a->off + a->len == off) {
    a->len += len;
    return 0;
  }
  ext_emit (a);
  a->off = off, a->len = len, a->flags = flags;
  return 0;
}

static enum MHD_Result
do_extents (struct MHD_Connection *c, struct vb_ticket *t)
{
  const char *ctx = arg (c, "context");
  struct vb_sconn *sc = sconn_of (c);
  struct ext_acc a = { 0 };
  struct vb_backend *b;
  double t0 = vb_now ();

  if (ctx && strcmp (ctx, "zero") && strcmp (ctx, "dirty"))
    return vb_srv_error (c, MHD_HTTP_BAD_REQUEST,
                         "Unsupported context: use context=zero or dirty",
                         false);
  a.dirty = ctx && !strcmp (ctx, "dirty");
  if (!(b = backend (sc, t)))
    return backend_error (c);
  if (a.dirty && (!t->dirty || !b->has_dirty))
    return vb_srv_error (c, MHD_HTTP_NOT_FOUND,
                         "Ticket does not support dirty extents", false);
  a.list = json_object_new_array ();
  if (t->size && b->ops->extents (b, a.dirty, 0, t->size, ext_cb, &a) < 0) {
    json_object_put (a.list);
    return backend_error (c);
  }
  ext_emit (&a);
  vb_sconn_stat (sc, VB_ST_EXTENTS, t0, 0);
  return vb_srv_json (c, MHD_HTTP_OK, a.list, NULL);
}

/* ---- GET checksum ---- */

static enum MHD_Result
do_algorithms (struct MHD_Connection *c)
{
  struct json_object *o = json_object_new_object ();
  struct json_object *l = json_object_new_array ();

  for (size_t i = 0; vb_srv_checksum_algorithm (i); i++)
    json_object_array_add (l, json_object_new_string (
      vb_srv_checksum_algorithm (i)));
  json_object_object_add (o, "algorithms", l);
  return vb_srv_json (c, MHD_HTTP_OK, o, NULL);
}

static enum MHD_Result
do_checksum (struct MHD_Connection *c, struct vb_ticket *t)
{
  const char *alg = arg (c, "algorithm"), *bs = arg (c, "block_size");
  struct vb_sconn *sc = sconn_of (c);
  uint64_t block = DEFAULT_BLOCK;
  struct json_object *o;
  struct vb_backend *b;
  enum MHD_Result ret;
  double t0 = vb_now ();
  char hex[VB_SRV_HEX_MAX];

  if (!alg)
    alg = "blake2b";
  if (!vb_srv_checksum_known (alg))
    return vb_srv_error (c, MHD_HTTP_BAD_REQUEST,
                         "Unsupported algorithm: use one of "
                         "/checksum/algorithms", false);
  if (bs && vb_srv_parse_block_size (bs, &block) < 0)
    return vb_srv_error (c, MHD_HTTP_BAD_REQUEST, vb_get_error (), false);
  if (!(b = backend_slot (c, sc, t, false, &ret)))
    return ret;
  if (vb_srv_checksum (b, t->size, block, alg, hex) < 0)
    return backend_error (c);
  vb_sconn_stat (sc, VB_ST_CHECKSUM, t0, t->size);
  o = json_object_new_object ();
  json_object_object_add (o, "algorithm", json_object_new_string (alg));
  json_object_object_add (o, "block_size", json_object_new_int64 ((int64_t) block));
  json_object_object_add (o, "checksum", json_object_new_string (hex));
  return vb_srv_json (c, MHD_HTTP_OK, o, NULL);
}

/* ---- GET data ---- */

struct reader {
  struct vb_backend *b;
  struct vb_ticket *t;
  struct vb_sconn *sc;
  uint64_t off, len, sent;
};

static ssize_t
read_cb (void *cls, uint64_t pos, char *buf, size_t max)
{
  struct reader *rd = cls;
  double t0 = vb_now ();

  if (pos >= rd->len)
    return MHD_CONTENT_READER_END_OF_STREAM;
  if (max > rd->len - pos)
    max = (size_t) (rd->len - pos);
  if (rd->b->ops->pread (rd->b, buf, max, rd->off + pos) < 0) {
    vb_warn ("%s: %s", rd->sc->client, vb_get_error ());
    return MHD_CONTENT_READER_END_WITH_ERROR;
  }
  vb_sconn_stat (rd->sc, VB_ST_READ, t0, max);
  rd->sent += max;
  return (ssize_t) max;
}

static void
read_free (void *cls)
{
  struct reader *rd = cls;

  pthread_mutex_lock (&rd->t->lock);
  vb_ticket_add_range (rd->t, rd->off, rd->sent);
  pthread_mutex_unlock (&rd->t->lock);
  vb_backend_unref (rd->b);
  vb_ticket_unref (NULL, rd->t);
  free (rd);
}

/* OFF and LEN of RANGE (the whole image without one); false with the
 * refusal queued in *RET. */
static bool
get_range (struct MHD_Connection *c, const char *range, struct vb_ticket *t,
           uint64_t *off, uint64_t *len, enum MHD_Result *ret)
{
  *off = 0;
  *len = t->size;
  if (!range)
    return true;
  switch (vb_srv_parse_range (range, t->size, off, len)) {
  case VB_RANGE_OK:
    return true;
  case VB_RANGE_UNSATISFIABLE:
    *ret = unsatisfiable (c, t->size, "Requested range not satisfiable");
    return false;
  case VB_RANGE_INVALID:
  default:
    *ret = vb_srv_error (c, MHD_HTTP_RANGE_NOT_SATISFIABLE, "Cannot satisfy "
                         "the range: give one bytes=START-END", false);
    return false;
  }
}

/* A client's ranged read (4 MiB from oVirt's and ours) is read whole
 * first: MHD zeroes a callback response's whole block buffer, which perf
 * showed as 10% of serve's time.  NULL with *RET set on failure. */
static struct MHD_Response *
read_whole (struct MHD_Connection *c, struct vb_sconn *sc, struct vb_ticket *t,
            struct vb_backend *b, uint64_t off, uint64_t len,
            enum MHD_Result *ret)
{
  char *buf = malloc ((size_t) len);
  double t0 = vb_now ();
  struct MHD_Response *resp;

  *ret = MHD_NO;
  if (!buf)
    return NULL;
  if (b->ops->pread (b, buf, (size_t) len, off) < 0) {
    free (buf);
    *ret = backend_error (c);
    return NULL;
  }
  vb_sconn_stat (sc, VB_ST_READ, t0, len);
  pthread_mutex_lock (&t->lock);
  vb_ticket_add_range (t, off, len);
  pthread_mutex_unlock (&t->lock);
  if (!(resp = MHD_create_response_from_buffer_with_free_callback (
          (size_t) len, buf, free)))
    free (buf);
  return resp;
}

/* Larger reads go out block by block from read_cb, which holds B and T. */
static struct MHD_Response *
read_streamed (struct vb_sconn *sc, struct vb_ticket *t, struct vb_backend *b,
               uint64_t off, uint64_t len)
{
  struct MHD_Response *resp;
  struct reader *rd = calloc (1, sizeof *rd);

  if (!rd)
    return NULL;
  *rd = (struct reader) { .b = b, .t = t, .sc = sc, .off = off, .len = len };
  vb_backend_ref (b);
  __atomic_add_fetch (&t->refs, 1, __ATOMIC_SEQ_CST);
  if (!(resp = MHD_create_response_from_callback (len, READ_BLOCK, read_cb,
                                                  rd, read_free)))
    read_free (rd);
  return resp;
}

static enum MHD_Result
do_get (struct MHD_Connection *c, struct vb_ticket *t)
{
  const char *range = header (c, MHD_HTTP_HEADER_RANGE);
  struct vb_sconn *sc = sconn_of (c);
  struct MHD_Response *resp;
  struct vb_backend *b;
  enum MHD_Result ret = MHD_NO;
  uint64_t off, len;
  char cr[80];

  if (!get_range (c, range, t, &off, &len, &ret) ||
      !(b = backend_slot (c, sc, t, false, &ret)))
    return ret;
  if (len && len <= READ_BLOCK)
    resp = read_whole (c, sc, t, b, off, len, &ret);
  else
    resp = read_streamed (sc, t, b, off, len);
  if (!resp)
    return ret;
  MHD_add_response_header (resp, "Server", "imageio/virtback-" VB_VERSION);
  MHD_add_response_header (resp, "Content-Type", "application/octet-stream");
  MHD_add_response_header (resp, "Content-Disposition", "attachment");
  if (range) {
    snprintf (cr, sizeof cr, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, off,
              off + len - 1, t->size);
    MHD_add_response_header (resp, "Content-Range", cr);
  }
  ret = MHD_queue_response (c, range ? MHD_HTTP_PARTIAL_CONTENT : MHD_HTTP_OK,
                            resp);
  MHD_destroy_response (resp);
  return ret;
}

/* ---- PUT ---- */

static void
fail (struct rq *r, unsigned status)
{
  if (!r->fail) {
    r->fail = strdup (vb_get_error ());
    r->fail_status = status;
  }
}

static int
put_flush_buf (struct rq *r)
{
  struct vb_backend *b = r->sc->b;
  double t0 = vb_now ();

  if (!r->fill || r->fail)
    return 0;
  if (b->ops->pwrite (b, r->buf, r->fill, r->off) < 0) {
    fail (r, MHD_HTTP_INTERNAL_SERVER_ERROR);
    return -1;
  }
  vb_sconn_stat (r->sc, VB_ST_WRITE, t0, r->fill);
  r->off += r->fill;
  r->bytes += r->fill;
  r->fill = 0;
  return 0;
}

static enum MHD_Result
put_start (struct MHD_Connection *c, struct rq *r)
{
  const char *cl = header (c, MHD_HTTP_HEADER_CONTENT_LENGTH);
  const char *crh = header (c, MHD_HTTP_HEADER_CONTENT_RANGE);
  enum MHD_Result ret;
  uint64_t len;

  if (!cl || vb_parse_content_length (cl, &len) < 0)
    return vb_srv_error (c, MHD_HTTP_BAD_REQUEST,
                         "Content-Length header is required", true);
  if (crh && vb_srv_parse_content_range (crh, &r->off) < 0)
    return vb_srv_error (c, MHD_HTTP_BAD_REQUEST, vb_get_error (), true);
  if (vb_srv_parse_flush (arg (c, "flush"), true, &r->flush) < 0)
    return vb_srv_error (c, MHD_HTTP_BAD_REQUEST, vb_get_error (), true);
  if (r->off > r->t->size || len > r->t->size - r->off)
    return unsatisfiable (c, r->t->size, "Requested range past the end of "
                          "the image");
  if (!backend_slot (c, r->sc, r->t, true, &ret))
    return ret;
  r->cap = len < PUT_BUF ? (size_t) len : PUT_BUF;
  if (r->cap && !(r->buf = malloc (r->cap)))
    return MHD_NO;
  r->left = len;
  r->kind = RQ_PUT;
  return MHD_YES;
}

static void
put_data (struct rq *r, const char *data, size_t n)
{
  if (n > r->left) {           /* MHD never gives more than Content-Length */
    n = (size_t) r->left;
  }
  r->left -= n;
  while (n && !r->fail) {
    size_t k = r->cap - r->fill < n ? r->cap - r->fill : n;

    memcpy (r->buf + r->fill, data, k);
    r->fill += k, data += k, n -= k;
    if (r->fill == r->cap)
      put_flush_buf (r);
  }
}

static enum MHD_Result
put_end (struct MHD_Connection *c, struct rq *r)
{
  double t0 = vb_now ();

  put_flush_buf (r);
  if (!r->fail && r->left) {
    vb_set_error ("The body is shorter than Content-Length");
    fail (r, MHD_HTTP_BAD_REQUEST);
  }
  if (!r->fail && r->flush) {
    if (r->sc->b->ops->flush (r->sc->b) < 0)
      fail (r, MHD_HTTP_INTERNAL_SERVER_ERROR);
    vb_sconn_stat (r->sc, VB_ST_FLUSH, t0, 0);
  }
  if (r->fail)
    return vb_srv_error (c, r->fail_status, r->fail, false);
  return vb_srv_reply (c, MHD_HTTP_OK, NULL, "", 0);
}

/* ---- PATCH ---- */

static enum MHD_Result
patch_start (struct MHD_Connection *c, struct rq *r)
{
  const char *cl = header (c, MHD_HTTP_HEADER_CONTENT_LENGTH);
  enum MHD_Result ret;
  uint64_t len;

  if (!cl || vb_parse_content_length (cl, &len) < 0)
    return vb_srv_error (c, MHD_HTTP_BAD_REQUEST,
                         "Content-Length header is required", true);
  if (len > VB_SERVE_JSON_MAX)
    return vb_srv_error (c, MHD_HTTP_BAD_REQUEST, "Invalid PATCH request: "
                         "the body is too large", true);
  if (!backend_slot (c, r->sc, r->t, true, &ret))
    return ret;
  if (!(r->buf = malloc (len + 1)))
    return MHD_NO;
  r->cap = (size_t) len;
  r->kind = RQ_PATCH;
  return MHD_YES;
}

static void
patch_data (struct rq *r, const char *data, size_t n)
{
  if (n > r->cap - r->fill)
    n = r->cap - r->fill;
  memcpy (r->buf + r->fill, data, n);
  r->fill += n;
}

static enum MHD_Result
patch_end (struct MHD_Connection *c, struct rq *r)
{
  struct vb_patch p;
  struct vb_backend *b;
  double t0 = vb_now ();

  if (vb_srv_parse_patch (r->buf, r->fill, &p) < 0)
    return vb_srv_error (c, MHD_HTTP_BAD_REQUEST, vb_get_error (), false);
  if (p.op == VB_PATCH_ZERO
      && (p.off > r->t->size || p.size > r->t->size - p.off))
    return unsatisfiable (c, r->t->size, "Requested range past the end of "
                          "the image");
  if (!(b = backend (r->sc, r->t)))
    return backend_error (c);
  if (p.op == VB_PATCH_ZERO) {
    if (p.size && b->ops->zero (b, p.size, p.off, r->t->sparse) < 0)
      return backend_error (c);
    vb_sconn_stat (r->sc, VB_ST_ZERO, t0, p.size);
    t0 = vb_now ();
  }
  if (p.op == VB_PATCH_FLUSH || p.flush) {
    if (b->ops->flush (b) < 0)
      return backend_error (c);
    vb_sconn_stat (r->sc, VB_ST_FLUSH, t0, 0);
  }
  return vb_srv_reply (c, MHD_HTTP_OK, NULL, "", 0);
}

/* ---- dispatch ---- */

enum res { RES_IMAGE, RES_EXTENTS, RES_CHECKSUM, RES_ALGORITHMS };

/* "/images/ID[/extents|/checksum|/checksum/algorithms]" into ID. */
static int
parse_image_path (const char *url, char id[VB_SERVE_ID_MAX + 1], enum res *res)
{
  const char *p = url + strlen ("/images/"), *slash = strchr (p, '/');
  size_t n = slash ? (size_t) (slash - p) : strlen (p);

  if (n == 0 || n > VB_SERVE_ID_MAX)
    return -1;
  memcpy (id, p, n);
  id[n] = '\0';
  if (!slash || !strcmp (slash, "/"))
    *res = RES_IMAGE;
  else if (!strcmp (slash, "/extents"))
    *res = RES_EXTENTS;
  else if (!strcmp (slash, "/checksum"))
    *res = RES_CHECKSUM;
  else if (!strcmp (slash, "/checksum/algorithms"))
    *res = RES_ALGORITHMS;
  else
    return -1;
  return 0;
}

static enum MHD_Result
method_not_allowed (struct MHD_Connection *c, const char *method)
{
  char msg[128];

  snprintf (msg, sizeof msg, "Method %.32s is not allowed here", method);
  return vb_srv_error (c, MHD_HTTP_METHOD_NOT_ALLOWED, msg, false);
}

static enum MHD_Result
forbidden (struct MHD_Connection *c, const char *fmt, const char *id,
           bool close)
{
  char msg[256];

  snprintf (msg, sizeof msg, fmt, id);
  return vb_srv_error (c, MHD_HTTP_FORBIDDEN, msg, close);
}

static enum MHD_Result
image_request (struct MHD_Connection *c, struct rq *r, const char *m,
               enum res res)
{
  struct vb_ticket *t = r->t;
  bool get = !strcmp (m, "GET"), put = !strcmp (m, "PUT");
  bool patch = !strcmp (m, "PATCH"), options = !strcmp (m, "OPTIONS");

  if (res != RES_IMAGE && !get)
    return method_not_allowed (c, m);
  if (!get && !put && !patch && !options)
    return method_not_allowed (c, m);
  if ((put || patch) && !t->may_write)
    return forbidden (c, "Ticket %s forbids write", t->uuid, false);
  if (get && !t->may_read)
    return forbidden (c, "Ticket %s forbids read", t->uuid, false);
  /* imageio's inactivity_timeout: how long this connection may idle */
  MHD_set_connection_option (c, MHD_CONNECTION_OPTION_TIMEOUT,
                             (unsigned int) t->inactivity_timeout);
  vb_ticket_begin (t);
  r->begun = true;
  vb_sconn_stat (r->sc, VB_ST_DISPATCH, vb_now (), 0);
  if (options)
    return do_options (c, t);
  if (put)
    return put_start (c, r);
  if (patch)
    return patch_start (c, r);
  switch (res) {
  case RES_EXTENTS: return do_extents (c, t);
  case RES_CHECKSUM: return do_checksum (c, t);
  case RES_ALGORITHMS: return do_algorithms (c);
  default: return do_get (c, t);
  }
}

static enum MHD_Result
first_call (struct MHD_Connection *c, struct rq *r, const char *url,
            const char *m)
{
  char id[VB_SERVE_ID_MAX + 1];
  enum res res;

  if (r->urilen > VB_SERVE_URI_MAX)
    return vb_srv_error (c, MHD_HTTP_URI_TOO_LONG, "Request URI too long",
                         true);
  if (!strcmp (url, "/info/")) {
    struct json_object *o = json_object_new_object ();

    if (strcmp (m, "GET"))
      return method_not_allowed (c, m);
    json_object_object_add (o, "version", json_object_new_string (VB_VERSION));
    return vb_srv_json (c, MHD_HTTP_OK, o, NULL);
  }
  if (!strcmp (url, "/images/*") && !strcmp (m, "OPTIONS"))
    return do_options (c, NULL);
  if (!strcmp (url, "/images/"))
    return vb_srv_error (c, MHD_HTTP_BAD_REQUEST, "Ticket id is required: "
                         "use /images/TICKET", false);
  if (strncmp (url, "/images/", 8) || parse_image_path (url, id, &res) < 0)
    return vb_srv_error (c, MHD_HTTP_NOT_FOUND, "No such resource", false);
  /* The daemon lists its algorithms for any ticket, even none, and keeps
   * the connection after a checksum's 403. */
  if (res == RES_ALGORITHMS)
    return strcmp (m, "GET") ? method_not_allowed (c, m) : do_algorithms (c);
  if (!(r->t = vb_tickets_get (r->sc->srv->tickets, id)))
    return forbidden (c, "No such ticket %s", id, res != RES_CHECKSUM);
  if (!vb_ticket_valid (r->t, vb_now ()))
    return forbidden (c, "Ticket %s expired", id, false);
  return image_request (c, r, m, res);
}

enum MHD_Result
vb_images_handler (void *cls, struct MHD_Connection *c, const char *url,
                   const char *method, const char *version,
                   const char *upload, size_t *upload_size, void **rqp)
{
  struct rq *r = *rqp;

  if (!r)
    return MHD_NO;
  /* libmicrohttpd closes a connection whose response was queued in the
   * first call, so a request without a body is answered in the second;
   * PUT and PATCH are checked at once, before any 100 Continue. */
  if (!r->sc) {
    if (!(r->sc = sconn_of (c)))
      return MHD_NO;
    if (strcmp (method, "PUT") && strcmp (method, "PATCH"))
      return MHD_YES;
    r->dispatched = true;
    return first_call (c, r, url, method);
  }
  if (!r->dispatched) {
    r->dispatched = true;
    return first_call (c, r, url, method);
  }
  if (*upload_size) {
    if (r->kind == RQ_PUT)
      put_data (r, upload, *upload_size);
    else if (r->kind == RQ_PATCH)
      patch_data (r, upload, *upload_size);
    *upload_size = 0;
    return MHD_YES;
  }
  if (r->kind == RQ_PUT)
    return put_end (c, r);
  if (r->kind == RQ_PATCH)
    return patch_end (c, r);
  return MHD_YES;
}
