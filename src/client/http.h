/* SPDX-License-Identifier: GPL-3.0-or-later */
/* http.h: one connection to an imageio image URL (libcurl), for the
 * clients of client.h.  A handle is used by one thread; it keeps its
 * connection alive between requests.  Every failure is -1 with an error
 * naming the URL and the status and message (or curl's reason). */
#ifndef VB_CLIENT_HTTP_H
#define VB_CLIENT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/client.h"

struct vb_http;

#define VB_HTTP_SOCK_MAX 108    /* sun_path */

struct vb_caps {
  bool extents, zero, flush;
  unsigned max_readers, max_writers;
  bool local;                  /* the server is on this host */
  char unix_socket[VB_HTTP_SOCK_MAX];  /* OPTIONS' "unix_socket" */
  size_t unix_len;             /* 0: none; may begin with a NUL */
};

struct vb_rext {
  uint64_t off, len;
  bool zero, dirty;
};

/* Once, before any thread uses curl. */
int vb_http_global_init (void);
struct vb_http *vb_http_open (const char *url, const struct vb_client_opts *o);
void vb_http_close (struct vb_http *h);
int vb_http_options (struct vb_http *h, struct vb_caps *caps);
/* From now on through unix socket SOCK (LEN bytes, "\0NAME" abstract),
 * plain HTTP to the URL's path; LEN 0: back to the URL itself. */
int vb_http_use_socket (struct vb_http *h, const char *sock, size_t len);
/* The extents list (malloc'd, *N entries), checked to tile [0, size). */
struct vb_rext *vb_http_extents (struct vb_http *h, bool dirty, size_t *n);
/* Exactly LEN bytes at OFF into BUF (a 206 answer). */
int vb_http_get (struct vb_http *h, void *buf, size_t len, uint64_t off);
/* The same, and written on to FD at OFF a megabyte at a time as the
 * bytes arrive (a write that fails is the error). */
int vb_http_get_fd (struct vb_http *h, int fd, void *buf, size_t len,
                    uint64_t off);
/* LEN bytes of BUF at OFF, flush=n. */
int vb_http_put (struct vb_http *h, const void *buf, size_t len, uint64_t off);
int vb_http_zero (struct vb_http *h, uint64_t off, uint64_t len);
int vb_http_flush (struct vb_http *h);
/* Parse an extents JSON text (LEN bytes) into a list tiling from 0.
 * Exposed for the unit test. */
struct vb_rext *vb_http_parse_extents (const char *json, size_t len,
                                       bool dirty, size_t *n);

#endif
