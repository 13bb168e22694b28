/* SPDX-License-Identifier: GPL-3.0-or-later */
/* qemu_img.c: qemu-img info, bitmap and create.  See qemu_nbd.h.  The
 * info JSON is read with json-c into struct vb_image_info and nowhere
 * else. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/error.h"
#include "common/proc.h"
#include "nbd/qemu_nbd.h"

static bool
absolute (const char *path, const char *what)
{
  if (path && path[0] == '/')
    return true;
  vb_set_error ("%s: qemu-img %s: not an absolute path",
                path ? path : "(null)", what);
  return false;
}

/* A string member of O, copied; NULL when absent.  *OOM on failure. */
static char *
dup_member (struct json_object *o, const char *key, bool *oom)
{
  struct json_object *v;
  char *s;

  if (!o || !json_object_object_get_ex (o, key, &v))
    return NULL;
  if (!(s = strdup (json_object_get_string (v))))
    *oom = true;
  return s;
}

static bool
has_flag (struct json_object *bitmap, const char *flag)
{
  struct json_object *fl;

  if (!json_object_object_get_ex (bitmap, "flags", &fl))
    return false;
  for (size_t k = 0; k < json_object_array_length (fl); k++)
    if (!strcmp (json_object_get_string (json_object_array_get_idx (fl, k)),
                 flag))
      return true;
  return false;
}

static bool
parse_bitmaps (struct vb_image_info *info, struct json_object *data)
{
  struct json_object *bms;
  bool oom = false;
  size_t n;

  if (!data || !json_object_object_get_ex (data, "bitmaps", &bms) ||
      !(n = json_object_array_length (bms)))
    return true;
  if (!(info->bitmaps = calloc (n, sizeof *info->bitmaps)))
    return false;
  for (size_t i = 0; i < n; i++) {
    struct json_object *b = json_object_array_get_idx (bms, i);
    struct vb_image_bitmap *bm = &info->bitmaps[info->nbitmaps];

    if (!(bm->name = dup_member (b, "name", &oom)))
      continue;
    bm->in_use = has_flag (b, "in-use");
    bm->enabled = has_flag (b, "auto");
    info->nbitmaps++;
  }
  return !oom;
}

static bool
parse_qcow2 (struct vb_image_info *info, struct json_object *o)
{
  struct json_object *fs, *data = NULL, *v;
  bool oom = false;

  if (json_object_object_get_ex (o, "format-specific", &fs))
    json_object_object_get_ex (fs, "data", &data);
  info->compat = dup_member (data, "compat", &oom);
  info->compression_type = dup_member (data, "compression-type", &oom);
  info->data_file = dup_member (data, "data-file", &oom);
  if (data && json_object_object_get_ex (data, "lazy-refcounts", &v))
    info->lazy_refcounts = json_object_get_boolean (v);
  return !oom && parse_bitmaps (info, data);
}

static bool
parse_object (struct vb_image_info *info, struct json_object *o)
{
  struct json_object *v;
  bool oom = false;

  info->lazy_refcounts = -1;
  info->format = dup_member (o, "format", &oom);
  info->backing_file = dup_member (o, "backing-filename", &oom);
  info->virtual_size = -1;
  if (json_object_object_get_ex (o, "virtual-size", &v) &&
      json_object_is_type (v, json_type_int))
    info->virtual_size = json_object_get_int64 (v);
  if (json_object_object_get_ex (o, "cluster-size", &v))
    info->cluster_size = json_object_get_int64 (v);
  return !oom && parse_qcow2 (info, o);
}

struct vb_image_info *
vb_image_info_parse (const char *json, size_t len, const char *what)
{
  struct json_tokener *tok = json_tokener_new ();
  struct json_object *o = tok ? json_tokener_parse_ex (tok, json, (int) len)
                              : NULL;
  struct vb_image_info *info = NULL;

  if (tok)
    json_tokener_free (tok);
  if (!o || !json_object_is_type (o, json_type_object)) {
    vb_set_error ("%s: cannot parse qemu-img info", what);
    json_object_put (o);
    return NULL;
  }
  if (!(info = calloc (1, sizeof *info)) || !(info->json = malloc (len + 1)) ||
      !parse_object (info, o)) {
    vb_image_info_free (info);
    json_object_put (o);
    vb_set_error ("out of memory");
    return NULL;
  }
  memcpy (info->json, json, len);
  info->json[len] = '\0';
  info->json_len = len;
  json_object_put (o);
  return info;
}

struct vb_image_info *
vb_qemu_img_info (const char *path)
{
  if (!absolute (path, "info"))
    return NULL;
  char *argv[] = { "qemu-img", "info", "-U", "--output", "json",
                   (char *) path, NULL };
  size_t len;
  char *out = vb_proc_output (argv, &len);
  struct vb_image_info *info;

  if (!out) {
    vb_prefix_error ("%s", path);
    return NULL;
  }
  if (len == 0) {
    vb_set_error ("%s: qemu-img info printed nothing", path);
    free (out);
    return NULL;
  }
  info = vb_image_info_parse (out, len, path);
  free (out);
  return info;
}

void
vb_image_info_free (struct vb_image_info *info)
{
  if (!info)
    return;
  for (size_t i = 0; i < info->nbitmaps; i++)
    free (info->bitmaps[i].name);
  free (info->bitmaps);
  free (info->json);
  free (info->format);
  free (info->backing_file);
  free (info->compat);
  free (info->compression_type);
  free (info->data_file);
  free (info);
}

void
vb_cleanup_image_info (struct vb_image_info **p)
{
  vb_image_info_free (*p);
}

const struct vb_image_bitmap *
vb_image_info_bitmap (const struct vb_image_info *info, const char *name)
{
  for (size_t i = 0; i < info->nbitmaps; i++)
    if (!strcmp (info->bitmaps[i].name, name))
      return &info->bitmaps[i];
  return NULL;
}

int
vb_qemu_img_bitmap (const char *op, const char *path, const char *name)
{
  char *argv[] = { "qemu-img", "bitmap", (char *) op, "-f", "qcow2",
                   (char *) path, (char *) name, NULL };
  char *enable[] = { "qemu-img", "bitmap", (char *) op, "--enable", "-f",
                     "qcow2", (char *) path, (char *) name, NULL };

  if (!absolute (path, "bitmap"))
    return -1;
  if (vb_proc_run (strcmp (op, "--add") ? argv : enable) < 0) {
    vb_prefix_error ("%s: bitmap %s", path, name);
    return -1;
  }
  return 0;
}

int
vb_qemu_img_create (const char *path, const char *format,
                    const char *options, uint64_t size)
{
  char sz[32];
  char *argv[10];
  size_t n = 0;

  if (!absolute (path, "create"))
    return -1;
  snprintf (sz, sizeof sz, "%" PRIu64, size);
  argv[n++] = "qemu-img";
  argv[n++] = "create";
  argv[n++] = "-q";
  argv[n++] = "-f";
  argv[n++] = (char *) format;
  if (options && *options) {
    argv[n++] = "-o";
    argv[n++] = (char *) options;
  }
  argv[n++] = (char *) path;
  argv[n++] = sz;
  argv[n] = NULL;
  return vb_proc_run (argv);
}
