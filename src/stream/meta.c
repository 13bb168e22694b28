/* SPDX-License-Identifier: GPL-3.0-or-later */
/* meta.c: the meta frame's JSON.
 *
 * The writer reproduces Python's json.dumps(meta, indent=4) byte for byte
 * (key order, ", "/": " layout, ensure_ascii escaping) so that files we
 * write are indistinguishable from the peer's.  The reader uses json-c and
 * is lenient about keys the peer added over time. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/text.h"
#include "stream/stream.h"

void
vb_meta_clear (struct vb_meta *m)
{
  free (m->date);
  free (m->disk_name);
  free (m->disk_format);
  free (m->checkpoint_name);
  free (m->parent_checkpoint);
  free (m->compression_method);
  memset (m, 0, sizeof *m);
}

/* Write S as a JSON string literal; -1 if S is not valid UTF-8. */
static int
put_string (FILE *fp, const char *s)
{
  if (vb_put_py_json_string (fp, s) == 0)
    return 0;
  vb_set_error ("metadata string \"%s\" is not valid UTF-8", s);
  return -1;
}

static int
put_strkey (FILE *fp, const char *key, const char *val, bool last)
{
  fprintf (fp, "    \"%s\": ", key);
  if (put_string (fp, val) == -1)
    return -1;
  fputs (last ? "\n" : ",\n", fp);
  return 0;
}

char *
vb_meta_to_json (const struct vb_meta *m, size_t *len)
{
  char *buf = NULL;
  size_t size = 0;
  FILE *fp = open_memstream (&buf, &size);
  int r = 0;

  if (fp == NULL) {
    vb_set_error_errno (errno, "open_memstream");
    return NULL;
  }
  fprintf (fp, "{\n    \"virtualSize\": %" PRIu64 ",\n", m->virtual_size);
  fprintf (fp, "    \"dataSize\": %" PRIu64 ",\n", m->data_size);
  r |= put_strkey (fp, "date", m->date, false);
  r |= put_strkey (fp, "diskName", m->disk_name, false);
  r |= put_strkey (fp, "diskFormat", m->disk_format, false);
  r |= put_strkey (fp, "checkpointName", m->checkpoint_name, false);
  if (m->compressed)
    fprintf (fp, "    \"compressed\": %d,\n", m->compression_level);
  else
    fputs ("    \"compressed\": false,\n", fp);
  r |= put_strkey (fp, "compressionMethod",
                   m->compression_method ? m->compression_method : "lz4", false);
  r |= put_strkey (fp, "parentCheckpoint", m->parent_checkpoint, false);
  fprintf (fp, "    \"incremental\": %s,\n", m->incremental ? "true" : "false");
  fprintf (fp, "    \"streamVersion\": %d\n}", m->stream_version);
  if (fclose (fp) != 0 || r != 0) {
    if (r == 0)
      vb_set_error ("metadata: out of memory");
    free (buf);
    return NULL;
  }
  *len = size;
  return buf;
}

/* ---- parsing ---- */

static struct json_object *
get_key (struct json_object *o, const char *key)
{
  struct json_object *v;

  return json_object_object_get_ex (o, key, &v) ? v : NULL;
}

static int
get_u64 (struct json_object *o, const char *key, uint64_t *out)
{
  struct json_object *v = get_key (o, key);

  if (v == NULL || !json_object_is_type (v, json_type_int)) {
    vb_set_error ("metadata: %s %s", key,
                  v ? "is not an integer" : "is missing");
    return -1;
  }
  if (json_object_get_int64 (v) < 0) {
    vb_set_error ("metadata: %s is negative", key);
    return -1;
  }
  *out = json_object_get_uint64 (v);
  return 0;
}

/* Required string (DEF == NULL) or optional one defaulting to DEF. */
static int
get_str (struct json_object *o, const char *key, const char *def, char **out)
{
  struct json_object *v = get_key (o, key);
  const char *s = def;

  if (v && json_object_is_type (v, json_type_string))
    s = json_object_get_string (v);
  else if ((v && !json_object_is_type (v, json_type_null)) || def == NULL) {
    vb_set_error ("metadata: %s %s", key, v ? "is not a string" : "is missing");
    return -1;
  }
  *out = strdup (s);
  if (*out == NULL) {
    vb_set_error_errno (errno, "strdup");
    return -1;
  }
  return 0;
}

static int
get_bool (struct json_object *o, const char *key, bool *out)
{
  struct json_object *v = get_key (o, key);

  if (v == NULL || !json_object_is_type (v, json_type_boolean)) {
    vb_set_error ("metadata: %s %s", key, v ? "is not a boolean" : "is missing");
    return -1;
  }
  *out = json_object_get_boolean (v);
  return 0;
}

/* "compressed" is false or the level (the peer also treats true as on). */
static int
get_compressed (struct json_object *o, struct vb_meta *m)
{
  struct json_object *v = get_key (o, "compressed");

  if (v && json_object_is_type (v, json_type_boolean)) {
    m->compressed = json_object_get_boolean (v);
    m->compression_level = 0;
    return 0;
  }
  if (v && json_object_is_type (v, json_type_int)) {
    int64_t l = json_object_get_int64 (v);

    if (l < -1000 || l > 1000) {
      vb_set_error ("metadata: compressed level %" PRId64 " out of range", l);
      return -1;
    }
    m->compressed = true;
    m->compression_level = (int) l;
    return 0;
  }
  vb_set_error ("metadata: compressed %s",
                v ? "is neither false nor an integer" : "is missing");
  return -1;
}

static int
get_version (struct json_object *o, struct vb_meta *m)
{
  struct json_object *v = get_key (o, "streamVersion");

  if (v == NULL)
    v = get_key (o, "stream-version");
  if (v == NULL) {
    m->stream_version = 1;
    return 0;
  }
  if (!json_object_is_type (v, json_type_int) ||
      json_object_get_int64 (v) < 1 || json_object_get_int64 (v) > 1000) {
    vb_set_error ("metadata: streamVersion is not a valid version");
    return -1;
  }
  m->stream_version = (int) json_object_get_int64 (v);
  return 0;
}

static int
fill_meta (struct json_object *o, struct vb_meta *m)
{
  if (get_u64 (o, "virtualSize", &m->virtual_size) == -1 ||
      get_u64 (o, "dataSize", &m->data_size) == -1 ||
      get_str (o, "diskName", NULL, &m->disk_name) == -1 ||
      get_str (o, "checkpointName", NULL, &m->checkpoint_name) == -1 ||
      get_compressed (o, m) == -1 ||
      get_bool (o, "incremental", &m->incremental) == -1 ||
      get_str (o, "date", "", &m->date) == -1 ||
      get_str (o, "diskFormat", "", &m->disk_format) == -1 ||
      get_str (o, "compressionMethod", "lz4", &m->compression_method) == -1 ||
      get_str (o, "parentCheckpoint", "", &m->parent_checkpoint) == -1 ||
      get_version (o, m) == -1)
    return -1;
  return 0;
}

struct json_object *
vb_json_parse (const char *json, size_t len, const char *what)
{
  struct json_tokener *tok;
  struct json_object *o;
  enum json_tokener_error jerr;
  size_t used;

  if (len > INT32_MAX || memchr (json, '\0', len) != NULL) {
    vb_set_error ("%s: invalid JSON", what);
    return NULL;
  }
  tok = json_tokener_new ();
  if (tok == NULL) {
    vb_set_error ("%s: out of memory", what);
    return NULL;
  }
  json_tokener_set_flags (tok, JSON_TOKENER_STRICT);
  o = json_tokener_parse_ex (tok, json, (int) len);
  jerr = json_tokener_get_error (tok);
  used = json_tokener_get_parse_end (tok);
  json_tokener_free (tok);
  if (o == NULL || jerr != json_tokener_success) {
    json_object_put (o);
    vb_set_error ("%s: invalid JSON: %s", what,
                  jerr == json_tokener_continue ? "unexpected end"
                  : json_tokener_error_desc (jerr));
    return NULL;
  }
  while (used < len && strchr (" \t\r\n", json[used]))
    used++;
  if (used != len) {
    json_object_put (o);
    vb_set_error ("%s: trailing bytes after JSON", what);
    return NULL;
  }
  return o;
}

int
vb_meta_from_json (const char *json, size_t len, struct vb_meta *m)
{
  struct json_object *o;
  int r;

  vb_meta_clear (m);
  o = vb_json_parse (json, len, "metadata");
  if (o == NULL)
    return -1;
  if (!json_object_is_type (o, json_type_object)) {
    json_object_put (o);
    vb_set_error ("metadata: not a JSON object");
    return -1;
  }
  r = fill_meta (o, m);
  json_object_put (o);
  if (r == -1)
    vb_meta_clear (m);
  return r;
}

char *
vb_meta_now (void)
{
  struct timeval tv;
  struct tm tm;
  char buf[64];
  char *s;

  gettimeofday (&tv, NULL);
  localtime_r (&tv.tv_sec, &tm);
  /* Python's isoformat() drops the fraction when it is zero. */
  snprintf (buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d",
            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
            tm.tm_hour, tm.tm_min, tm.tm_sec);
  if (tv.tv_usec != 0)
    snprintf (buf + strlen (buf), sizeof buf - strlen (buf), ".%06ld",
              (long) tv.tv_usec);
  s = strdup (buf);
  if (s == NULL)
    vb_set_error_errno (errno, "strdup");
  return s;
}
