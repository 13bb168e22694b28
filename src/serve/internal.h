/* SPDX-License-Identifier: GPL-3.0-or-later */
/* internal.h: the parts of virtback serve (serve.h) and how they share
 * state.
 *
 * - parse.c: the request parsers (ticket IDs, Range, Content-Range, the
 *   PATCH body, flush=).  Pure functions on untrusted bytes: anything
 *   malformed is refused, nothing is read past LEN.  Fuzzed.
 * - ticket.c: the ticket table.  A ticket is counted: the table holds one
 *   reference, each request one more, so a DELETE during a transfer frees
 *   the ticket when the transfer ends.  Lock order: table, then ticket.
 * - backend.c: nbd:, file:// and virtback: URLs behind one interface.  A
 *   backend belongs to one client connection (one NBD connection each);
 *   a response still streaming holds a reference on it.  The view of a
 *   virtback: ticket is opened once, by the ticket, and shared (views are
 *   thread-safe).
 * - images.c: the data API, and the max_readers/max_writers slots a
 *   connection holds (struct vb_sconn); control.c: the control API;
 *   checksum.c: the block hash; server.c: the daemons, sockets, TLS and
 *   connection stats; config.c: the --config file (serve.h).
 */
#ifndef VB_SERVE_INTERNAL_H
#define VB_SERVE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#define VB_SERVE_ID_MAX 128
#define VB_SERVE_URI_MAX 4096           /* longer request lines: 414 */
#define VB_SERVE_JSON_MAX (64u << 10)   /* PATCH and ticket bodies */
#define VB_SERVE_MAX_READERS 8
#define VB_SERVE_NBD_WRITERS 8
#define VB_SERVE_INACTIVITY 60          /* the daemon's inactivity_timeout */

/* ---- parse.c ---- */
bool vb_srv_valid_id (const char *id);
enum vb_range_result { VB_RANGE_OK, VB_RANGE_UNSATISFIABLE, VB_RANGE_INVALID };
/* "bytes=A-B" or "bytes=A-" against SIZE: *OFF and *LEN.  Both 416s are
 * the daemon's: UNSATISFIABLE (with a Content-Range of the size) for one
 * range that ends past SIZE (never clipped: imageio's client counts on the
 * length it asked for) or starts at or past it; INVALID (no Content-Range)
 * for reversed, suffix and multiple ranges and a header that is no byte
 * range at all. */
enum vb_range_result vb_srv_parse_range (const char *h, uint64_t size,
                                         uint64_t *off, uint64_t *len);
/* "bytes A-B/SIZE" or "bytes A-B/(star)" (and "bytes A-(star)"):
 * only A is used.  0, or -1 with an error. */
int vb_srv_parse_content_range (const char *h, uint64_t *off);

enum vb_patch_op { VB_PATCH_ZERO, VB_PATCH_FLUSH };
struct vb_patch {
  enum vb_patch_op op;
  uint64_t off, size;
  bool flush;
};
/* A PATCH body of LEN bytes (not NUL-terminated).  0, or -1 with an
 * error (bad JSON, unknown op, missing or bad fields). */
int vb_srv_parse_patch (const char *body, size_t len, struct vb_patch *p);
/* The value of ?flush= : "y" or "n" (NULL: DEF).  0, or -1. */
int vb_srv_parse_flush (const char *v, bool def, bool *out);
/* A Content-Length value (decimal digits only).  0, or -1. */
int vb_parse_content_length (const char *v, uint64_t *out);
/* A decimal block size for ?block_size=: 1-16 MiB, a multiple of 4096. */
int vb_srv_parse_block_size (const char *v, uint64_t *out);

/* ---- ticket.c ---- */
enum vb_url_kind { VB_URL_NBD, VB_URL_FILE, VB_URL_VIRTBACK };

struct vb_view;

struct vb_ticket {
  int refs;                    /* under the table lock */
  char *uuid;
  uint64_t size;
  char *url;
  bool may_read, may_write, sparse, dirty;
  bool ops_write[2];           /* "ops" as given: write or read, in order */
  size_t nops;
  char *transfer_id, *filename;
  int64_t timeout;
  int64_t inactivity_timeout;  /* an idle connection's seconds, as imageio */
  enum vb_url_kind kind;
  char *path;                  /* socket, file or backup directory */
  char *export;                /* nbd export name or NULL; virtback disk */
  char *until;                 /* virtback point or NULL */
  struct vb_view *view;        /* virtback: opened at PUT */
  struct vb_target *repo;      /* virtback: the directory the view reads */
  pthread_mutex_t lock;        /* guards the state below */
  double expires;              /* monotonic seconds */
  double last_active;
  int active;                  /* requests in progress */
  int connections;
  int readers, writers;        /* connections holding a slot */
  struct vb_span *spans;       /* the ranges moved, merged and sorted */
  size_t nspans;
  uint64_t transferred;        /* their total: each byte counted once */
  bool deleted;
};
struct vb_span { uint64_t off, end; };

struct vb_tickets;
struct vb_tickets *vb_tickets_new (void);
void vb_tickets_free (struct vb_tickets *tt);
/* The file:// allowlist (realpath'd here); NULL or empty: none. */
int vb_tickets_allow_dirs (struct vb_tickets *tt, char *const *dirs);
/* Add or replace ID from a JSON body; 0, -1 with an error (a 400), or -2
 * for a file:// path outside the allowlist (a 403). */
int vb_tickets_put (struct vb_tickets *tt, const char *id,
                    const char *body, size_t len);
/* A reference to ID, or NULL if there is none. */
struct vb_ticket *vb_tickets_get (struct vb_tickets *tt, const char *id);
void vb_ticket_unref (struct vb_tickets *tt, struct vb_ticket *t);
/* 0 if gone or removed (idempotent). */
void vb_tickets_delete (struct vb_tickets *tt, const char *id);
/* DELETE /tickets/: remove them all, as imageio does. */
void vb_tickets_clear (struct vb_tickets *tt);
/* PATCH {"timeout":N}: 0, -1 with an error (400), 1 if no such ticket. */
int vb_tickets_extend (struct vb_tickets *tt, const char *id,
                       const char *body, size_t len);
/* The ticket with its state, as imageio's GET /tickets/ID.  Malloc'd. */
char *vb_ticket_info (struct vb_ticket *t);
/* Is the ticket still valid at NOW (not past timeout or idle)? */
bool vb_ticket_valid (struct vb_ticket *t, double now);
void vb_ticket_begin (struct vb_ticket *t);
/* End a request that moved BYTES ending at END (its range: END - BYTES
 * to END). */
void vb_ticket_end (struct vb_ticket *t, uint64_t end, uint64_t bytes);
/* Count OFF..OFF+LEN as transferred, as imageio does: the union of the
 * ranges moved, so a range read twice counts once.  T->lock held. */
void vb_ticket_add_range (struct vb_ticket *t, uint64_t off, uint64_t len);
void vb_ticket_connection (struct vb_ticket *t, int delta);
double vb_now (void);

/* ---- backend.c ---- */
enum { VB_EXT_F_ZERO = 1, VB_EXT_F_HOLE = 2, VB_EXT_F_DIRTY = 4 };
typedef int (*vb_srv_extent_cb) (void *op, uint64_t off, uint64_t len,
                                 unsigned flags);

struct vb_backend {
  int refs;                    /* atomic */
  const struct vb_backend_ops *ops;
  uint64_t size;               /* the image's own size */
  bool has_dirty;              /* a dirty bitmap can be asked */
  int max_writers;
  void *priv;
};

struct vb_backend_ops {
  int (*pread) (struct vb_backend *b, void *buf, size_t len, uint64_t off);
  int (*pwrite) (struct vb_backend *b, const void *buf, size_t len,
                 uint64_t off);
  int (*zero) (struct vb_backend *b, uint64_t len, uint64_t off, bool punch);
  int (*flush) (struct vb_backend *b);
  /* Extents of [OFF, OFF+LEN) in order, tiling it, to CB; DIRTY asks
   * the dirty bitmap too (only where has_dirty). */
  int (*extents) (struct vb_backend *b, bool dirty, uint64_t off,
                  uint64_t len, vb_srv_extent_cb cb, void *op);
  void (*close) (struct vb_backend *b);
};

struct vb_backend *vb_backend_new (const struct vb_backend_ops *ops,
                                   void *priv, uint64_t size);
/* backend_nbd.c */
struct vb_backend *vb_backend_nbd_open (struct vb_ticket *t);
/* Parse and check a ticket's URL into T (kind, path, export, until). */
int vb_backend_parse_url (struct vb_ticket *t);
/* A file:// ticket's path resolved (realpath) into T->path, which must
 * lie under one of DIRS (resolved, NULL-terminated); -1 with an error. */
int vb_backend_allow_file (struct vb_ticket *t, char *const *dirs);
/* Open T's backend for one connection; NULL with an error. */
struct vb_backend *vb_backend_open (struct vb_ticket *t);
void vb_backend_ref (struct vb_backend *b);
void vb_backend_unref (struct vb_backend *b);
/* max_writers as OPTIONS advertises it for a ticket of KIND. */
int vb_backend_max_writers (enum vb_url_kind kind);

/* ---- checksum.c ---- */
/* The block hash of [0, SIZE) of B with ALGORITHM (one of
 * vb_srv_checksum_algorithm's names; else -1, a 400) as hex into HEX. */
#define VB_SRV_HEX_MAX 129     /* SHA-512's 64 bytes in hex, and a NUL */
int vb_srv_checksum (struct vb_backend *b, uint64_t size, uint64_t block,
                     const char *algorithm, char hex[VB_SRV_HEX_MAX]);
/* The Ith algorithm in the daemon's order, NULL past the last. */
const char *vb_srv_checksum_algorithm (size_t i);
bool vb_srv_checksum_known (const char *algorithm);

/* ---- server.c, images.c, control.c ---- */
struct vb_serve;

/* Per client connection of the data API. */
struct vb_stat { uint64_t ops, bytes; double secs; };
enum { VB_ST_DISPATCH, VB_ST_EXTENTS, VB_ST_READ, VB_ST_WRITE, VB_ST_ZERO,
       VB_ST_FLUSH, VB_ST_CHECKSUM, VB_ST_N };
struct vb_sconn {
  struct vb_serve *srv;
  char client[80];
  bool local;                  /* on the local unix socket */
  double start;
  struct vb_ticket *t;         /* ticket the backend is open for */
  struct vb_backend *b;
  bool reader, writer;         /* slots held on T */
  struct vb_stat st[VB_ST_N];
};

struct vb_serve;
struct vb_listener {
  struct vb_serve *srv;
  bool local;
};

struct vb_serve {
  struct MHD_Daemon *data, *local, *control;
  struct vb_listener on_data, on_local;
  struct vb_tickets *tickets;
  char *control_path, *local_path;   /* sockets made, removed at stop */
  char *cert, *key;                  /* PEM text for GnuTLS */
  char *url;                         /* base URL of the data API */
};

/* The access handlers (MHD_AccessHandlerCallback). */
enum MHD_Result vb_images_handler (void *cls, struct MHD_Connection *c,
                                   const char *url, const char *method,
                                   const char *version, const char *upload,
                                   size_t *upload_size, void **rq);
void vb_images_completed (void *cls, struct MHD_Connection *c, void **rq,
                          enum MHD_RequestTerminationCode toe);
enum MHD_Result vb_control_handler (void *cls, struct MHD_Connection *c,
                                    const char *url, const char *method,
                                    const char *version, const char *upload,
                                    size_t *upload_size, void **rq);
void vb_control_completed (void *cls, struct MHD_Connection *c, void **rq,
                           enum MHD_RequestTerminationCode toe);
void *vb_srv_uri_log (void *cls, const char *uri, struct MHD_Connection *c);
/* Queue a text/plain one-line error (imageio's shape). */
enum MHD_Result vb_srv_error (struct MHD_Connection *c, unsigned status,
                              const char *msg, bool close);
/* Queue BODY (LEN bytes, copied) with STATUS and TYPE (NULL: none). */
enum MHD_Result vb_srv_reply (struct MHD_Connection *c, unsigned status,
                              const char *type, const char *body, size_t len);
/* Queue a JSON object (consumed). */
struct json_object;
enum MHD_Result vb_srv_json (struct MHD_Connection *c, unsigned status,
                             struct json_object *o, const char *allow);
void vb_sconn_stat (struct vb_sconn *sc, int which, double t0,
                    uint64_t bytes);
/* Give back the reader and writer slots SC holds on its ticket. */
void vb_sconn_release (struct vb_sconn *sc);

#endif
