/* SPDX-License-Identifier: GPL-3.0-or-later */
/* sidefiles.c: what the side files of a backup directory record about the
 * domain and its disks: the UUID and a disk's format in vmconfig.*.xml
 * (libxml2), a disk's virtual size in <disk>.<ident>.qcow.json
 * (nbd/qemu_nbd.h parses it).
 * See backupset.h.  Nothing here fails loudly: a side file that is missing
 * or unreadable simply records nothing, and the caller decides. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "backupset/backupset.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "nbd/qemu_nbd.h"
#include "target/target.h"

static xmlDocPtr
read_xml (struct vb_target *t, const char *name)
{
  size_t len;
  CLEANUP_FREE char *text = name ? vb_target_read (t, name, &len) : NULL;

  if (!text || len > INT_MAX)
    return NULL;
  return xmlReadMemory (text, len, name, NULL, XML_PARSE_NONET |
                        XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

static xmlNodePtr
child (xmlNodePtr n, const char *name)
{
  for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
    if (c->type == XML_ELEMENT_NODE && !xmlStrcmp (c->name, BAD_CAST name))
      return c;
  return NULL;
}

/* The attribute ATTR of N, malloc'd with malloc (not xmlFree). */
static char *
prop (xmlNodePtr n, const char *attr)
{
  xmlChar *v = n ? xmlGetProp (n, BAD_CAST attr) : NULL;
  char *s = v ? strdup ((const char *) v) : NULL;

  xmlFree (v);
  return s;
}

char *
vb_bset_vmconfig_disk_format (struct vb_target *t, const char *ident,
                              const char *disk)
{
  CLEANUP_FREE char *name = vb_bset_vmconfig_name (ident);
  xmlDocPtr doc = read_xml (t, name);
  xmlNodePtr devs = doc ? child ((xmlNodePtr) doc, "domain") : NULL;
  char *fmt = NULL;

  devs = child (devs, "devices");
  for (xmlNodePtr d = devs ? devs->children : NULL; d && !fmt; d = d->next) {
    CLEANUP_FREE char *dev = NULL;

    if (d->type != XML_ELEMENT_NODE || xmlStrcmp (d->name, BAD_CAST "disk"))
      continue;
    dev = prop (child (d, "target"), "dev");
    if (dev && !strcmp (dev, disk))
      fmt = prop (child (d, "driver"), "type");
  }
  xmlFreeDoc (doc);
  return fmt;
}

int64_t
vb_bset_qcow_json_vsize (struct vb_target *t, const char *ident,
                         const char *disk)
{
  CLEANUP_FREE char *name = vb_bset_qcow_json_name (disk, ident);
  CLEANUP_FREE char *path = name ? vb_path_join (t->where, name) : NULL;
  CLEANUP_FREE char *text = NULL;
  CLEANUP_IMAGE_INFO struct vb_image_info *info = NULL;
  size_t len;

  if (!path || !(text = vb_target_read (t, name, &len)) ||
      !(info = vb_image_info_parse (text, len, path)))
    return -1;
  return info->virtual_size;
}

static char *
uuid_of (struct vb_target *t, const char *name)
{
  xmlDocPtr doc = read_xml (t, name);
  xmlNodePtr u = child (child ((xmlNodePtr) doc, "domain"), "uuid");
  xmlChar *text = u ? xmlNodeGetContent (u) : NULL;
  char *s = text && *text ? strdup ((const char *) text) : NULL;

  xmlFree (text);
  xmlFreeDoc (doc);
  return s;
}

char *
vb_bset_vmconfig_uuid (struct vb_target *t)
{
  CLEANUP_STRV char **names = vb_target_list (t, NULL);
  char *uuid = NULL;

  for (char **n = names; n && *n && !uuid; n++)
    if (!strncmp (*n, "vmconfig.", 9) && vb_has_suffix (*n, ".xml"))
      uuid = uuid_of (t, *n);
  return uuid;
}
