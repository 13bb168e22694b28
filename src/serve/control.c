/* SPDX-License-Identifier: GPL-3.0-or-later */
/* control.c: the control API of virtback serve, /tickets/ID on the
 * control socket (root only): PUT adds or replaces a ticket, GET shows it
 * with its state, PATCH {"timeout":N} extends it (also after expiry),
 * DELETE removes it (204, also when it is already gone); DELETE /tickets/
 * removes them all. */
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "serve/internal.h"

struct crq {
  char *body;
  size_t len;
  bool too_big;
  bool dispatched;
  bool bad_path;
};

void
vb_control_completed (void *cls, struct MHD_Connection *c, void **rqp,
                      enum MHD_RequestTerminationCode toe)
{
  struct crq *r = *rqp;

  if (r) {
    free (r->body);
    free (r);
  }
  *rqp = NULL;
}

static enum MHD_Result
with_body (struct MHD_Connection *c, struct vb_serve *s, const char *id,
           const char *m, struct crq *r)
{
  int ret;

  if (r->too_big)
    return vb_srv_error (c, MHD_HTTP_BAD_REQUEST, "Invalid ticket: the body "
                         "is too large", false);
  if (!strcmp (m, "PUT")) {
    if ((ret = vb_tickets_put (s->tickets, id, r->body, r->len)) < 0)
      return vb_srv_error (c, ret == -2 ? MHD_HTTP_FORBIDDEN
                           : MHD_HTTP_BAD_REQUEST, vb_get_error (), false);
    return vb_srv_reply (c, MHD_HTTP_OK, NULL, "", 0);
  }
  if ((ret = vb_tickets_extend (s->tickets, id, r->body, r->len)) < 0)
    return vb_srv_error (c, MHD_HTTP_BAD_REQUEST, vb_get_error (), false);
  if (ret > 0)
    return vb_srv_error (c, MHD_HTTP_NOT_FOUND, "No such ticket", false);
  return vb_srv_reply (c, MHD_HTTP_OK, NULL, "", 0);
}

static enum MHD_Result
get_ticket (struct MHD_Connection *c, struct vb_serve *s, const char *id)
{
  struct vb_ticket *t = vb_tickets_get (s->tickets, id);
  char *info;
  enum MHD_Result ret;

  if (!t)
    return vb_srv_error (c, MHD_HTTP_NOT_FOUND, "No such ticket", false);
  info = vb_ticket_info (t);
  vb_ticket_unref (s->tickets, t);
  if (!info)
    return MHD_NO;
  ret = vb_srv_reply (c, MHD_HTTP_OK, "application/json", info, strlen (info));
  free (info);
  return ret;
}

static void
take (struct crq *r, const char *data, size_t n)
{
  char *b;

  if (r->too_big || r->len + n > VB_SERVE_JSON_MAX
      || !(b = realloc (r->body, r->len + n + 1))) {
    r->too_big = true;
    return;
  }
  memcpy (b + r->len, data, n);
  r->body = b;
  r->len += n;
  b[r->len] = '\0';
}

/* /tickets/ without an ID: DELETE removes every ticket (imageio's
 * "remove all"), anything else is a 400 as imageio answers. */
static enum MHD_Result
no_id (struct MHD_Connection *c, struct vb_serve *s, const char *method)
{
  if (!strcmp (method, "DELETE")) {
    vb_tickets_clear (s->tickets);
    return vb_srv_reply (c, MHD_HTTP_NO_CONTENT, NULL, "", 0);
  }
  return vb_srv_error (c, MHD_HTTP_BAD_REQUEST, "Ticket id is required: use "
                       "/tickets/ID", true);
}

enum MHD_Result
vb_control_handler (void *cls, struct MHD_Connection *c, const char *url,
                    const char *method, const char *version,
                    const char *upload, size_t *upload_size, void **rqp)
{
  struct vb_serve *s = cls;
  struct crq *r = *rqp;
  const char *id = url + strlen ("/tickets/");
  bool body = !strcmp (method, "PUT") || !strcmp (method, "PATCH");

  if (!r) {
    if (!(r = calloc (1, sizeof *r)))
      return MHD_NO;
    *rqp = r;
    return MHD_YES;
  }
  /* An answer queued while a body is still coming would drop the
   * connection: a bad path is answered once the body is read. */
  if (!r->dispatched) {
    r->dispatched = true;
    if (!strcmp (url, "/tickets/"))
      return no_id (c, s, method);
    r->bad_path = strncmp (url, "/tickets/", 9) || !vb_srv_valid_id (id);
    if (!r->bad_path && !strcmp (method, "GET"))
      return get_ticket (c, s, id);
    if (!r->bad_path && !strcmp (method, "DELETE")) {
      vb_tickets_delete (s->tickets, id);
      return vb_srv_reply (c, MHD_HTTP_NO_CONTENT, NULL, "", 0);
    }
    if (!r->bad_path && !body)
      return vb_srv_error (c, MHD_HTTP_METHOD_NOT_ALLOWED, "Method not "
                           "allowed: use PUT, GET, PATCH or DELETE", false);
  }
  if (*upload_size) {
    take (r, upload, *upload_size);
    *upload_size = 0;
    return MHD_YES;
  }
  if (r->bad_path)
    return vb_srv_error (c, MHD_HTTP_NOT_FOUND, "No such resource: use "
                         "/tickets/ID", false);
  return with_body (c, s, id, method, r);
}
