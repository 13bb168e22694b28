/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Bitmaps QEMU holds that libvirt does not know of: left when checkpoint
 * metadata was lost (the domain redefined, moved, or "checkpoint-delete
 * --metadata").  A new checkpoint of the same name would then fail with
 * "Bitmap already exists", so a full backup removes them first.  libvirt
 * has no API for this; the QMP commands are the ones libvirt itself uses,
 * built with json-c so that any name arrives as one JSON string. */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "virt/virt.h"

/* Send EXECUTE with ARGS (taken over, may be NULL) and return the
 * "return" member of the answer. */
static struct json_object *
qmp (struct vb_domain *d, const char *execute, struct json_object *args)
{
  struct json_object *cmd = json_object_new_object ();
  struct json_object *j, *ret;
  char *out = NULL;
  int r;

  if (!cmd) {
    json_object_put (args);
    vb_set_error ("out of memory");
    return NULL;
  }
  json_object_object_add (cmd, "execute", json_object_new_string (execute));
  if (args)
    json_object_object_add (cmd, "arguments", args);
  r = virDomainQemuMonitorCommand (d->dom, json_object_to_json_string (cmd),
                                   &out, 0);
  json_object_put (cmd);
  if (r < 0) {
    vb_virt_set_error ("domain '%s': QMP %s", d->name, execute);
    return NULL;
  }
  j = json_tokener_parse (out);
  free (out);
  if (!j || !json_object_object_get_ex (j, "return", &ret)) {
    vb_set_error ("domain '%s': QMP %s: unexpected answer", d->name, execute);
    json_object_put (j);
    return NULL;
  }
  json_object_get (ret);
  json_object_put (j);
  return ret;
}

static struct json_object *
query_nodes (struct vb_domain *d)
{
  struct json_object *args = json_object_new_object ();

  if (!args) {
    vb_set_error ("out of memory");
    return NULL;
  }
  json_object_object_add (args, "flat", json_object_new_boolean (1));
  return qmp (d, "query-named-block-nodes", args);
}

static int
remove_one (struct vb_domain *d, const char *node, const char *name)
{
  struct json_object *args = json_object_new_object ();
  struct json_object *r;

  if (!args) {
    vb_set_error ("out of memory");
    return -1;
  }
  json_object_object_add (args, "node", json_object_new_string (node));
  json_object_object_add (args, "name", json_object_new_string (name));
  if (!(r = qmp (d, "block-dirty-bitmap-remove", args)))
    return -1;
  json_object_put (r);
  vb_info ("removed bitmap %s of node %s (its checkpoint was lost)", name,
           node);
  return 0;
}

static int
node_bitmaps (struct vb_domain *d, struct json_object *node,
              bool (*stray) (const char *, void *), void *opaque)
{
  struct json_object *nn, *bms;

  if (!json_object_object_get_ex (node, "node-name", &nn) ||
      !json_object_object_get_ex (node, "dirty-bitmaps", &bms))
    return 0;
  for (size_t i = 0; i < json_object_array_length (bms); i++) {
    struct json_object *b = json_object_array_get_idx (bms, i), *n;
    const char *name;
    if (!json_object_object_get_ex (b, "name", &n))
      continue;
    name = json_object_get_string (n);
    if (!stray (name, opaque))
      continue;
    if (remove_one (d, json_object_get_string (nn), name) < 0)
      return -1;
  }
  return 0;
}

int
vb_remove_stray_bitmaps (struct vb_domain *d,
                         bool (*stray) (const char *name, void *opaque),
                         void *opaque)
{
  struct json_object *nodes;
  int r = 0;

  if (!d->running)
    return 0;
  nodes = query_nodes (d);
  if (!nodes)
    return -1;
  for (size_t i = 0; r == 0 && i < json_object_array_length (nodes); i++)
    r = node_bitmaps (d, json_object_array_get_idx (nodes, i), stray, opaque);
  json_object_put (nodes);
  return r;
}

/* The format node of a disk: query-block maps its qdev (the alias) to it. */
static char *
disk_node (struct vb_domain *d, const struct vb_disk *disk)
{
  struct json_object *blocks = qmp (d, "query-block", NULL);
  char *node = NULL;

  if (!blocks)
    return NULL;
  for (size_t i = 0; !node && i < json_object_array_length (blocks); i++) {
    struct json_object *b = json_object_array_get_idx (blocks, i), *q, *in, *n;
    if (json_object_object_get_ex (b, "qdev", &q) && disk->alias &&
        !strcmp (json_object_get_string (q), disk->alias) &&
        json_object_object_get_ex (b, "inserted", &in) &&
        json_object_object_get_ex (in, "node-name", &n))
      node = strdup (json_object_get_string (n));
  }
  json_object_put (blocks);
  if (!node)
    vb_set_error ("domain '%s': no block node for disk %s", d->name,
                  disk->target);
  return node;
}

static int
node_bitmap_state (struct json_object *nodes, const char *node,
                   const char *name)
{
  for (size_t i = 0; i < json_object_array_length (nodes); i++) {
    struct json_object *n = json_object_array_get_idx (nodes, i), *nn, *bms;
    if (!json_object_object_get_ex (n, "node-name", &nn) ||
        strcmp (json_object_get_string (nn), node) ||
        !json_object_object_get_ex (n, "dirty-bitmaps", &bms))
      continue;
    for (size_t k = 0; k < json_object_array_length (bms); k++) {
      struct json_object *b = json_object_array_get_idx (bms, k), *bn, *inc;
      if (!json_object_object_get_ex (b, "name", &bn) ||
          strcmp (json_object_get_string (bn), name))
        continue;
      return json_object_object_get_ex (b, "inconsistent", &inc) &&
             json_object_get_boolean (inc) ? VB_BITMAP_INCONSISTENT
                                           : VB_BITMAP_OK;
    }
  }
  return 0;
}

int
vb_disk_bitmap_state (struct vb_domain *d, const struct vb_disk *disk,
                      const char *name)
{
  CLEANUP_FREE char *node = NULL;
  struct json_object *nodes;
  int st;

  if (!d->running)
    return vb_image_bitmap_state (d, disk->path, name);
  if (!(node = disk_node (d, disk)))
    return -1;
  nodes = query_nodes (d);
  if (!nodes)
    return -1;
  st = node_bitmap_state (nodes, node, name);
  json_object_put (nodes);
  return st;
}
