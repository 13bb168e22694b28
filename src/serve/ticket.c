/* SPDX-License-Identifier: GPL-3.0-or-later */
/* ticket.c: the ticket table of virtback serve (internal.h), in imageio's
 * shapes: PUT takes {"uuid","size","url","timeout","ops"} (the legacy
 * "name" for a missing "uuid") and optional sparse, dirty,
 * inactivity_timeout, transfer_id and filename, with the daemon's defaults:
 * inactivity_timeout 60 (how long an idle connection of the ticket stays
 * open; the ticket itself does not expire for it), transfer_id
 * "(ticket/UUID[:18])".  GET shows what the daemon's GET shows. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "serve/internal.h"
#include "target/target.h"
#include "view/view.h"

struct vb_tickets {
  pthread_mutex_t lock;
  struct vb_ticket **v;
  size_t n;
  char **dirs;                 /* file:// allowlist, resolved; NULL-ended */
};

double
vb_now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

struct vb_tickets *
vb_tickets_new (void)
{
  struct vb_tickets *tt = calloc (1, sizeof *tt);

  if (!tt)
    return vb_set_error_errno (ENOMEM, "tickets"), NULL;
  pthread_mutex_init (&tt->lock, NULL);
  return tt;
}

static void
ticket_free (struct vb_ticket *t)
{
  if (!t)
    return;
  free (t->uuid);
  free (t->url);
  free (t->transfer_id);
  free (t->filename);
  free (t->path);
  free (t->export);
  free (t->until);
  vb_view_close (t->view);
  vb_target_close (t->repo);
  free (t->spans);
  pthread_mutex_destroy (&t->lock);
  free (t);
}

void
vb_tickets_free (struct vb_tickets *tt)
{
  if (!tt)
    return;
  for (size_t i = 0; i < tt->n; i++)
    vb_ticket_unref (NULL, tt->v[i]);
  free (tt->v);
  for (char **d = tt->dirs; d && *d; d++)
    free (*d);
  free (tt->dirs);
  pthread_mutex_destroy (&tt->lock);
  free (tt);
}

int
vb_tickets_allow_dirs (struct vb_tickets *tt, char *const *dirs)
{
  size_t n = 0;

  while (dirs && dirs[n])
    n++;
  if (!(tt->dirs = calloc (n + 1, sizeof *tt->dirs)))
    return vb_set_error_errno (ENOMEM, "allowlist"), -1;
  for (size_t i = 0; i < n; i++)
    if (!(tt->dirs[i] = realpath (dirs[i], NULL))) {
      vb_set_error_errno (errno, "[file] allow = %s", dirs[i]);
      return -1;
    }
  return 0;
}

static ssize_t
find (struct vb_tickets *tt, const char *id)
{
  for (size_t i = 0; i < tt->n; i++)
    if (!strcmp (tt->v[i]->uuid, id))
      return (ssize_t) i;
  return -1;
}

struct vb_ticket *
vb_tickets_get (struct vb_tickets *tt, const char *id)
{
  struct vb_ticket *t = NULL;
  ssize_t i;

  pthread_mutex_lock (&tt->lock);
  if ((i = find (tt, id)) >= 0) {
    t = tt->v[i];
    __atomic_add_fetch (&t->refs, 1, __ATOMIC_SEQ_CST);
  }
  pthread_mutex_unlock (&tt->lock);
  return t;
}

void
vb_ticket_unref (struct vb_tickets *tt, struct vb_ticket *t)
{
  if (t && __atomic_sub_fetch (&t->refs, 1, __ATOMIC_SEQ_CST) == 0)
    ticket_free (t);
}

void
vb_tickets_delete (struct vb_tickets *tt, const char *id)
{
  struct vb_ticket *t = NULL;
  ssize_t i;

  pthread_mutex_lock (&tt->lock);
  if ((i = find (tt, id)) >= 0) {
    t = tt->v[i];
    tt->v[i] = tt->v[--tt->n];
  }
  pthread_mutex_unlock (&tt->lock);
  if (t) {
    pthread_mutex_lock (&t->lock);
    t->deleted = true;
    pthread_mutex_unlock (&t->lock);
    vb_ticket_unref (tt, t);
  }
}

void
vb_tickets_clear (struct vb_tickets *tt)
{
  struct vb_ticket *t;

  for (;;) {
    pthread_mutex_lock (&tt->lock);
    t = tt->n ? tt->v[--tt->n] : NULL;
    pthread_mutex_unlock (&tt->lock);
    if (!t)
      return;
    pthread_mutex_lock (&t->lock);
    t->deleted = true;
    pthread_mutex_unlock (&t->lock);
    vb_ticket_unref (tt, t);
  }
}

/* ---- PUT ---- */

static struct json_object *
parse_body (const char *body, size_t len)
{
  struct json_tokener *tok;
  struct json_object *o;

  if (len == 0 || len > VB_SERVE_JSON_MAX) {
    vb_set_error ("Invalid ticket: the body must be JSON, at most %u bytes",
                  VB_SERVE_JSON_MAX);
    return NULL;
  }
  if (!(tok = json_tokener_new ()))
    return vb_set_error_errno (ENOMEM, "json"), NULL;
  o = json_tokener_parse_ex (tok, body, (int) len);
  if (!o || json_tokener_get_error (tok) != json_tokener_success
      || json_tokener_get_parse_end (tok) != len
      || !json_object_is_type (o, json_type_object)) {
    json_object_put (o);
    o = NULL;
    vb_set_error ("Invalid ticket: the body is not one JSON object");
  }
  json_tokener_free (tok);
  return o;
}

static int
get_int (struct json_object *o, const char *name, bool required,
         int64_t max, int64_t *out)
{
  struct json_object *v;

  if (!json_object_object_get_ex (o, name, &v)) {
    if (required)
      vb_set_error ("Invalid ticket: \"%s\" is required", name);
    return required ? -1 : 0;
  }
  errno = 0;
  *out = json_object_get_int64 (v);
  if (!json_object_is_type (v, json_type_int) || errno || *out < 0
      || *out > max) {
    vb_set_error ("Invalid ticket: \"%s\" must be an integer from 0 to %lld",
                  name, (long long) max);
    return -1;
  }
  return 0;
}

static int
get_str (struct json_object *o, const char *name, bool required,
         size_t max, char **out)
{
  struct json_object *v;

  if (!json_object_object_get_ex (o, name, &v)) {
    if (required)
      vb_set_error ("Invalid ticket: \"%s\" is required", name);
    return required ? -1 : 0;
  }
  if (!json_object_is_type (v, json_type_string)
      || (size_t) json_object_get_string_len (v) > max
      || strlen (json_object_get_string (v))
         != (size_t) json_object_get_string_len (v)) {
    vb_set_error ("Invalid ticket: \"%s\" must be a string of at most %zu "
                  "bytes", name, max);
    return -1;
  }
  if (!(*out = strdup (json_object_get_string (v))))
    return vb_set_error_errno (ENOMEM, "ticket"), -1;
  return 0;
}

static int
get_bool (struct json_object *o, const char *name, bool *out)
{
  struct json_object *v;

  if (!json_object_object_get_ex (o, name, &v))
    return 0;
  if (!json_object_is_type (v, json_type_boolean)) {
    vb_set_error ("Invalid ticket: \"%s\" must be true or false", name);
    return -1;
  }
  *out = json_object_get_boolean (v);
  return 0;
}

static int
get_ops (struct json_object *o, struct vb_ticket *t)
{
  struct json_object *v;
  size_t n;

  if (!json_object_object_get_ex (o, "ops", &v)
      || !json_object_is_type (v, json_type_array)
      || (n = json_object_array_length (v)) == 0 || n > 2)
    goto bad;
  for (size_t i = 0; i < n; i++) {
    const char *op = json_object_get_string (json_object_array_get_idx (v, i));

    if (!json_object_is_type (json_object_array_get_idx (v, i),
                              json_type_string))
      goto bad;
    if (!strcmp (op, "read"))
      t->may_read = true;
    else if (!strcmp (op, "write"))
      t->may_read = t->may_write = true;
    else
      goto bad;
    t->ops_write[i] = !strcmp (op, "write");
  }
  t->nops = n;
  return 0;
 bad:
  vb_set_error ("Invalid ticket: \"ops\" must be [\"read\"], [\"write\"] or "
                "[\"read\", \"write\"]");
  return -1;
}

static int
ticket_fields (struct json_object *o, const char *id, struct vb_ticket *t)
{
  int64_t size;

  /* imageio still takes the legacy "name" when "uuid" is absent */
  if (get_str (o, "uuid", false, VB_SERVE_ID_MAX, &t->uuid) < 0
      || (!t->uuid && get_str (o, "name", false, VB_SERVE_ID_MAX,
                               &t->uuid) < 0))
    return -1;
  if (!t->uuid) {
    vb_set_error ("Invalid ticket: \"uuid\" is required");
    return -1;
  }
  if (strcmp (t->uuid, id)) {
    vb_set_error ("Invalid ticket: \"uuid\" is not the ID in the path");
    return -1;
  }
  if (get_int (o, "size", true, INT64_MAX, &size) < 0
      || get_str (o, "url", true, 4096, &t->url) < 0
      || get_int (o, "timeout", true, INT32_MAX, &t->timeout) < 0
      || get_ops (o, t) < 0
      || get_int (o, "inactivity_timeout", false, INT32_MAX,
                  &t->inactivity_timeout) < 0
      || get_bool (o, "sparse", &t->sparse) < 0
      || get_bool (o, "dirty", &t->dirty) < 0
      || get_str (o, "transfer_id", false, 256, &t->transfer_id) < 0
      || get_str (o, "filename", false, 4096, &t->filename) < 0)
    return -1;
  t->size = (uint64_t) size;
  if (!t->transfer_id
      && asprintf (&t->transfer_id, "(ticket/%.18s)", t->uuid) < 0) {
    t->transfer_id = NULL;
    return vb_set_error_errno (ENOMEM, "ticket"), -1;
  }
  return vb_backend_parse_url (t);
}

static int
insert (struct vb_tickets *tt, struct vb_ticket *t)
{
  struct vb_ticket *old = NULL, **v;
  ssize_t i;

  pthread_mutex_lock (&tt->lock);
  if ((i = find (tt, t->uuid)) >= 0) {
    old = tt->v[i];
    tt->v[i] = t;
  }
  else if (!(v = realloc (tt->v, (tt->n + 1) * sizeof *v))) {
    pthread_mutex_unlock (&tt->lock);
    return vb_set_error_errno (ENOMEM, "tickets"), -1;
  }
  else {
    tt->v = v;
    tt->v[tt->n++] = t;
  }
  pthread_mutex_unlock (&tt->lock);
  vb_ticket_unref (tt, old);
  return 0;
}

int
vb_tickets_put (struct vb_tickets *tt, const char *id, const char *body,
                size_t len)
{
  struct json_object *o;
  struct vb_ticket *t;
  int r;

  if (!vb_srv_valid_id (id)) {
    vb_set_error ("Invalid ticket ID: use 1 to %d letters, digits, '-', '_' "
                  "or '.'", VB_SERVE_ID_MAX);
    return -1;
  }
  if (!(o = parse_body (body, len)))
    return -1;
  if (!(t = calloc (1, sizeof *t))) {
    json_object_put (o);
    return vb_set_error_errno (ENOMEM, "ticket"), -1;
  }
  pthread_mutex_init (&t->lock, NULL);
  t->refs = 1;
  t->inactivity_timeout = VB_SERVE_INACTIVITY;
  r = ticket_fields (o, id, t);
  json_object_put (o);
  if (r == 0 && t->kind == VB_URL_FILE
      && vb_backend_allow_file (t, tt->dirs) < 0) {
    ticket_free (t);
    return -2;
  }
  t->last_active = vb_now ();
  t->expires = t->last_active + (double) t->timeout;
  if (r < 0 || insert (tt, t) < 0) {
    ticket_free (t);
    return -1;
  }
  return 0;
}

int
vb_tickets_extend (struct vb_tickets *tt, const char *id, const char *body,
                   size_t len)
{
  struct json_object *o;
  struct vb_ticket *t;
  int64_t timeout;
  int r;

  if (!(o = parse_body (body, len)))
    return -1;
  r = get_int (o, "timeout", true, INT32_MAX, &timeout);
  json_object_put (o);
  if (r < 0)
    return -1;
  if (!(t = vb_tickets_get (tt, id)))
    return 1;
  pthread_mutex_lock (&t->lock);
  t->last_active = vb_now ();
  t->expires = t->last_active + (double) timeout;
  pthread_mutex_unlock (&t->lock);
  vb_ticket_unref (tt, t);
  return 0;
}

/* ---- state ---- */

bool
vb_ticket_valid (struct vb_ticket *t, double now)
{
  bool ok;

  pthread_mutex_lock (&t->lock);
  ok = !t->deleted && now < t->expires;
  pthread_mutex_unlock (&t->lock);
  return ok;
}

void
vb_ticket_begin (struct vb_ticket *t)
{
  pthread_mutex_lock (&t->lock);
  t->active++;
  t->last_active = vb_now ();
  pthread_mutex_unlock (&t->lock);
}

void
vb_ticket_end (struct vb_ticket *t, uint64_t end, uint64_t bytes)
{
  pthread_mutex_lock (&t->lock);
  t->active--;
  if (bytes)
    vb_ticket_add_range (t, end - bytes, bytes);
  t->last_active = vb_now ();
  pthread_mutex_unlock (&t->lock);
}

/* A client may move scattered ranges without end; past this many spans a
 * new one is merged with its nearest neighbour (the gap then counts). */
#define MAX_SPANS 1024

/* Merge spans [i, j) with [off, end) into one at i. */
static void
merge_spans (struct vb_ticket *t, size_t i, size_t j, uint64_t off,
             uint64_t end)
{
  if (j > i) {
    off = off < t->spans[i].off ? off : t->spans[i].off;
    end = end > t->spans[j - 1].end ? end : t->spans[j - 1].end;
    memmove (&t->spans[i + 1], &t->spans[j],
             (t->nspans - j) * sizeof *t->spans);
    t->nspans -= j - i - 1;
  }
  else {
    memmove (&t->spans[i + 1], &t->spans[i],
             (t->nspans - i) * sizeof *t->spans);
    t->nspans++;
  }
  t->spans[i].off = off;
  t->spans[i].end = end;
}

void
vb_ticket_add_range (struct vb_ticket *t, uint64_t off, uint64_t len)
{
  uint64_t end = off + len;
  size_t i = 0, j, k;

  if (len == 0)
    return;
  if (!t->spans && !(t->spans = calloc (MAX_SPANS, sizeof *t->spans)))
    return;                    /* only the statistic is lost */
  while (i < t->nspans && t->spans[i].end < off)
    i++;
  j = i;
  while (j < t->nspans && t->spans[j].off <= end)
    j++;
  if (j == i && t->nspans == MAX_SPANS) {
    /* no overlap and no room: swallow the gap to the nearer neighbour */
    if (i == t->nspans || (i > 0 && off - t->spans[i - 1].end
                           < t->spans[i].off - end))
      i--;
    j = i + 1;
  }
  merge_spans (t, i, j, off, end);
  t->transferred = 0;
  for (k = 0; k < t->nspans; k++)
    t->transferred += t->spans[k].end - t->spans[k].off;
}

void
vb_ticket_connection (struct vb_ticket *t, int delta)
{
  pthread_mutex_lock (&t->lock);
  t->connections += delta;
  pthread_mutex_unlock (&t->lock);
}

static void
add_ops (struct json_object *o, const struct vb_ticket *t)
{
  struct json_object *ops = json_object_new_array ();

  for (size_t i = 0; i < t->nops; i++)
    json_object_array_add (ops, json_object_new_string (
      t->ops_write[i] ? "write" : "read"));
  json_object_object_add (o, "ops", ops);
}

static void
add_int (struct json_object *o, const char *key, int64_t v)
{
  json_object_object_add (o, key, json_object_new_int64 (v));
}

static void
add_bool (struct json_object *o, const char *key, bool v)
{
  json_object_object_add (o, key, json_object_new_boolean (v));
}

/* The daemon's keys in its order; "transferred" only for a ticket of one
 * op, as the daemon, which cannot tell reads from writes apart. */
static void
add_info (struct json_object *o, const struct vb_ticket *t, double now)
{
  add_bool (o, "active", t->active > 0);
  add_bool (o, "canceled", t->deleted);
  add_int (o, "connections", t->connections);
  add_int (o, "expires", (int64_t) t->expires);
  add_int (o, "idle_time",
           t->active > 0 ? 0 : (int64_t) (now - t->last_active));
  add_int (o, "inactivity_timeout", t->inactivity_timeout);
  add_ops (o, t);
  add_int (o, "size", (int64_t) t->size);
  add_bool (o, "sparse", t->sparse);
  add_bool (o, "dirty", t->dirty);
  add_int (o, "timeout", t->timeout);
  json_object_object_add (o, "url", json_object_new_string (t->url));
  json_object_object_add (o, "uuid", json_object_new_string (t->uuid));
  json_object_object_add (o, "transfer_id",
                          json_object_new_string (t->transfer_id));
  if (t->filename)
    json_object_object_add (o, "filename",
                            json_object_new_string (t->filename));
  if (t->nops == 1)
    add_int (o, "transferred", (int64_t) t->transferred);
}

char *
vb_ticket_info (struct vb_ticket *t)
{
  struct json_object *o = json_object_new_object ();
  double now = vb_now ();
  char *s;

  pthread_mutex_lock (&t->lock);
  add_info (o, t, now);
  pthread_mutex_unlock (&t->lock);
  s = strdup (json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN
                                           | JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put (o);
  if (!s)
    vb_set_error_errno (ENOMEM, "ticket");
  return s;
}
