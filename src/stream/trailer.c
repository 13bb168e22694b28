/* SPDX-License-Identifier: GPL-3.0-or-later */
/* trailer.c: the compression trailer, one entry per data frame.
 *
 * Written as Python's json.dumps(list) does (", " and ": " separators).
 * An entry is the integer compressed size, or {"<total>": [sizes...]} when
 * the peer split the frame: it does so for every frame of at least
 * VB_STREAM_MAX_PIECE bytes, even if that gives a single piece, and its
 * restore relies on it, so we remember the form per frame. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/error.h"
#include "stream/stream.h"

void
vb_trailer_init (struct vb_trailer *t)
{
  memset (t, 0, sizeof *t);
}

void
vb_trailer_clear (struct vb_trailer *t)
{
  for (size_t i = 0; i < t->nframes; i++)
    free (t->pieces[i]);
  free (t->npieces);
  free (t->pieces);
  free (t->as_object);
  vb_trailer_init (t);
}

static int
grow (struct vb_trailer *t)
{
  size_t cap = t->cap ? t->cap * 2 : 64;
  size_t *np = realloc (t->npieces, cap * sizeof *np);
  uint64_t **pp;
  bool *ob;

  if (np == NULL)
    goto oom;
  t->npieces = np;
  pp = realloc (t->pieces, cap * sizeof *pp);
  if (pp == NULL)
    goto oom;
  t->pieces = pp;
  ob = realloc (t->as_object, cap * sizeof *ob);
  if (ob == NULL)
    goto oom;
  t->as_object = ob;
  t->cap = cap;
  return 0;
 oom:
  vb_set_error_errno (errno, "trailer: realloc");
  return -1;
}

static int
add_entry (struct vb_trailer *t, const uint64_t *sizes, size_t n, bool obj)
{
  uint64_t *copy;

  if (n == 0 || n > SIZE_MAX / sizeof *copy) {
    vb_set_error ("trailer: a data frame needs at least one piece");
    return -1;
  }
  if (t->nframes == t->cap && grow (t) == -1)
    return -1;
  copy = malloc (n * sizeof *copy);
  if (copy == NULL) {
    vb_set_error_errno (errno, "trailer: malloc");
    return -1;
  }
  memcpy (copy, sizes, n * sizeof *copy);
  t->npieces[t->nframes] = n;
  t->pieces[t->nframes] = copy;
  t->as_object[t->nframes] = obj;
  t->nframes++;
  return 0;
}

int
vb_trailer_add (struct vb_trailer *t, const uint64_t *sizes, size_t n)
{
  return add_entry (t, sizes, n, n > 1);
}

int
vb_trailer_add_frame (struct vb_trailer *t, uint64_t frame_len,
                      const uint64_t *sizes, size_t n)
{
  return add_entry (t, sizes, n, n > 1 || frame_len >= VB_STREAM_MAX_PIECE);
}

char *
vb_trailer_to_json (const struct vb_trailer *t, size_t *len)
{
  char *buf = NULL;
  size_t size = 0;
  FILE *fp = open_memstream (&buf, &size);

  if (fp == NULL) {
    vb_set_error_errno (errno, "open_memstream");
    return NULL;
  }
  fputc ('[', fp);
  for (size_t i = 0; i < t->nframes; i++) {
    uint64_t total = 0;

    if (i > 0)
      fputs (", ", fp);
    if (!t->as_object[i]) {
      fprintf (fp, "%" PRIu64, t->pieces[i][0]);
      continue;
    }
    for (size_t j = 0; j < t->npieces[i]; j++)
      total += t->pieces[i][j];
    fprintf (fp, "{\"%" PRIu64 "\": [", total);
    for (size_t j = 0; j < t->npieces[i]; j++)
      fprintf (fp, "%s%" PRIu64, j ? ", " : "", t->pieces[i][j]);
    fputs ("]}", fp);
  }
  fputc (']', fp);
  if (fclose (fp) != 0) {
    vb_set_error ("trailer: out of memory");
    free (buf);
    return NULL;
  }
  *len = size;
  return buf;
}

/* ---- parsing ---- */

static int
json_size (struct json_object *v, uint64_t *out)
{
  if (!json_object_is_type (v, json_type_int) || json_object_get_int64 (v) < 0)
    return -1;
  *out = json_object_get_uint64 (v);
  return 0;
}

/* {"<total>": [a, b, ...]} with total == a + b + ... */
static int
parse_object (struct json_object *o, size_t idx, struct vb_trailer *t)
{
  struct json_object_iterator it = json_object_iter_begin (o);
  struct json_object *arr;
  const char *key;
  char *end;
  uint64_t total, sum = 0;
  size_t n;
  uint64_t *sizes;
  int r;

  if (json_object_object_length (o) != 1)
    goto bad;
  key = json_object_iter_peek_name (&it);
  arr = json_object_iter_peek_value (&it);
  errno = 0;
  total = strtoull (key, &end, 10);
  if (key[0] < '0' || key[0] > '9' || *end != '\0' || errno != 0 ||
      !json_object_is_type (arr, json_type_array))
    goto bad;
  n = json_object_array_length (arr);
  if (n == 0)
    goto bad;
  sizes = calloc (n, sizeof *sizes);
  if (sizes == NULL) {
    vb_set_error_errno (errno, "trailer: calloc");
    return -1;
  }
  for (size_t j = 0; j < n; j++) {
    if (json_size (json_object_array_get_idx (arr, j), &sizes[j]) == -1 ||
        sizes[j] > UINT64_MAX - sum) {
      free (sizes);
      goto bad;
    }
    sum += sizes[j];
  }
  r = sum == total ? add_entry (t, sizes, n, true) : -1;
  free (sizes);
  if (sum != total)
    goto bad;
  return r;
 bad:
  vb_set_error ("trailer: entry %zu is not {\"<total>\": [sizes]} with "
                "matching total", idx);
  return -1;
}

static int
parse_entry (struct json_object *v, size_t idx, struct vb_trailer *t)
{
  uint64_t size;

  if (json_object_is_type (v, json_type_object))
    return parse_object (v, idx, t);
  if (json_size (v, &size) == -1) {
    vb_set_error ("trailer: entry %zu is not a size", idx);
    return -1;
  }
  return add_entry (t, &size, 1, false);
}

int
vb_trailer_from_json (const char *json, size_t len, struct vb_trailer *t)
{
  struct json_object *o;
  size_t n;

  vb_trailer_clear (t);
  o = vb_json_parse (json, len, "trailer");
  if (o == NULL)
    return -1;
  if (!json_object_is_type (o, json_type_array)) {
    json_object_put (o);
    vb_set_error ("trailer: not a JSON list");
    return -1;
  }
  n = json_object_array_length (o);
  for (size_t i = 0; i < n; i++) {
    if (parse_entry (json_object_array_get_idx (o, i), i, t) == -1) {
      json_object_put (o);
      vb_trailer_clear (t);
      return -1;
    }
  }
  json_object_put (o);
  return 0;
}
