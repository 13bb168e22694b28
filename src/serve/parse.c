/* SPDX-License-Identifier: GPL-3.0-or-later */
/* parse.c: the request parsers of virtback serve (internal.h).  Every
 * input is untrusted: digits are counted before they are converted, and
 * nothing is read past the string or LEN. */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include <json-c/json.h>

#include "common/error.h"
#include "serve/internal.h"

bool
vb_srv_valid_id (const char *id)
{
  size_t n = strlen (id);

  if (n == 0 || n > VB_SERVE_ID_MAX || !strcmp (id, ".") || !strcmp (id, ".."))
    return false;
  for (const char *p = id; *p; p++)
    if (!isalnum ((unsigned char) *p) && !strchr ("-_.", *p))
      return false;
  return true;
}

/* Decimal digits at *P into *OUT, advancing *P; at most 19 digits, so the
 * value fits.  -1 if there are none or too many. */
static int
digits (const char **p, uint64_t *out)
{
  const char *s = *p;
  uint64_t v = 0;
  size_t n = 0;

  while (isdigit ((unsigned char) s[n])) {
    if (++n > 19)
      return -1;
    v = v * 10 + (uint64_t) (s[n - 1] - '0');
  }
  if (n == 0)
    return -1;
  *p = s + n;
  *out = v;
  return 0;
}

enum vb_range_result
vb_srv_parse_range (const char *h, uint64_t size, uint64_t *off,
                    uint64_t *len)
{
  const char *p = h;
  uint64_t a, b;

  if (strncmp (p, "bytes=", 6))
    return VB_RANGE_INVALID;
  p += 6;
  if (digits (&p, &a) < 0 || *p++ != '-')
    return VB_RANGE_INVALID;
  if (*p == '\0')
    b = a >= size ? a : size - 1;
  else if (digits (&p, &b) < 0 || *p != '\0')
    return VB_RANGE_INVALID;
  if (b < a)
    return VB_RANGE_INVALID;
  if (b >= size)
    return VB_RANGE_UNSATISFIABLE;
  *off = a;
  *len = b - a + 1;
  return VB_RANGE_OK;
}

int
vb_srv_parse_content_range (const char *h, uint64_t *off)
{
  const char *p = h;
  uint64_t a, b = 0, total;

  if (strncmp (p, "bytes ", 6))
    goto bad;
  p += 6;
  if (digits (&p, &a) < 0 || *p++ != '-')
    goto bad;
  if (*p == '*')
    p++;
  else if (digits (&p, &b) < 0 || b < a)
    goto bad;
  if (*p == '\0') {
    *off = a;
    return 0;
  }
  if (*p++ != '/')
    goto bad;
  if (!strcmp (p, "*") || (digits (&p, &total) == 0 && *p == '\0')) {
    *off = a;
    return 0;
  }
 bad:
  vb_set_error ("Invalid Content-Range header: give bytes START-END/*");
  return -1;
}

/* A non-negative integer member NAME of O into *OUT; REQUIRED or not. */
static int
json_u64 (struct json_object *o, const char *name, bool required,
          uint64_t *out)
{
  struct json_object *v;
  int64_t n;

  if (!json_object_object_get_ex (o, name, &v)) {
    if (!required)
      return 0;
    vb_set_error ("Missing \"%s\" in the request", name);
    return -1;
  }
  errno = 0;
  n = json_object_get_int64 (v);
  if (!json_object_is_type (v, json_type_int) || n < 0 || errno) {
    vb_set_error ("Invalid \"%s\": give a non-negative integer", name);
    return -1;
  }
  *out = (uint64_t) n;
  return 0;
}

static int
json_flush (struct json_object *o, struct vb_patch *p)
{
  struct json_object *v;

  p->flush = false;
  if (!json_object_object_get_ex (o, "flush", &v))
    return 0;
  if (!json_object_is_type (v, json_type_boolean)) {
    vb_set_error ("Invalid \"flush\": give true or false");
    return -1;
  }
  p->flush = json_object_get_boolean (v);
  return 0;
}

static int
patch_fields (struct json_object *o, struct vb_patch *p)
{
  struct json_object *v;
  const char *op;

  if (!json_object_is_type (o, json_type_object)
      || !json_object_object_get_ex (o, "op", &v)
      || !json_object_is_type (v, json_type_string)) {
    vb_set_error ("Invalid PATCH request: give a JSON object with \"op\"");
    return -1;
  }
  op = json_object_get_string (v);
  memset (p, 0, sizeof *p);
  if (!strcmp (op, "flush")) {
    p->op = VB_PATCH_FLUSH;
    return 0;
  }
  if (strcmp (op, "zero")) {
    vb_set_error ("Unsupported operation \"%.64s\": use zero or flush", op);
    return -1;
  }
  p->op = VB_PATCH_ZERO;
  if (json_u64 (o, "size", true, &p->size) < 0
      || json_u64 (o, "offset", false, &p->off) < 0)
    return -1;
  return json_flush (o, p);
}

int
vb_srv_parse_patch (const char *body, size_t len, struct vb_patch *p)
{
  struct json_tokener *tok;
  struct json_object *o;
  int r;

  if (len == 0 || len > VB_SERVE_JSON_MAX) {
    vb_set_error ("Invalid PATCH request: the body must be JSON, at most "
                  "%u bytes", VB_SERVE_JSON_MAX);
    return -1;
  }
  if (!(tok = json_tokener_new ()))
    return vb_set_error_errno (ENOMEM, "json"), -1;
  o = json_tokener_parse_ex (tok, body, (int) len);
  if (!o || json_tokener_get_error (tok) != json_tokener_success
      || json_tokener_get_parse_end (tok) != len) {
    json_object_put (o);
    json_tokener_free (tok);
    vb_set_error ("Invalid PATCH request: the body is not one JSON object");
    return -1;
  }
  json_tokener_free (tok);
  r = patch_fields (o, p);
  json_object_put (o);
  return r;
}

int
vb_srv_parse_flush (const char *v, bool def, bool *out)
{
  if (!v)
    *out = def;
  else if (!strcmp (v, "y"))
    *out = true;
  else if (!strcmp (v, "n"))
    *out = false;
  else {
    vb_set_error ("Invalid flush value \"%.32s\": use flush=y or flush=n", v);
    return -1;
  }
  return 0;
}

int
vb_srv_parse_block_size (const char *v, uint64_t *out)
{
  const char *p = v;
  uint64_t n;

  if (digits (&p, &n) < 0 || *p || n < (1u << 20) || n > (16u << 20)
      || n % 4096) {
    vb_set_error ("Invalid block_size \"%.32s\": give 1048576 to 16777216, a "
                  "multiple of 4096", v);
    return -1;
  }
  *out = n;
  return 0;
}

int
vb_parse_content_length (const char *v, uint64_t *out)
{
  const char *p = v;

  if (digits (&p, out) < 0 || *p) {
    vb_set_error ("Invalid Content-Length \"%.32s\"", v);
    return -1;
  }
  return 0;
}
