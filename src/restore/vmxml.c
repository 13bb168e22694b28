/* SPDX-License-Identifier: GPL-3.0-or-later */
/* vmxml.c: adjust the saved domain XML for the restored images, and
 * check the name it will be defined under.  See restore.h.  libvirt is
 * reached only through virt/virt.h, and only for --define: a plain
 * restore needs no libvirtd. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/text.h"
#include "restore/internal.h"
#include "restore/restore.h"
#include "virt/virt.h"

static xmlDocPtr
parse (const char *xml, size_t len)
{
  xmlDocPtr doc = xmlReadMemory (xml, len, "domain.xml", NULL,
                                 XML_PARSE_NONET | XML_PARSE_NOERROR |
                                 XML_PARSE_NOWARNING);
  xmlNodePtr root = doc ? xmlDocGetRootElement (doc) : NULL;

  if (!root || xmlStrcmp (root->name, BAD_CAST "domain") != 0) {
    if (doc)
      xmlFreeDoc (doc);
    vb_set_error ("not a libvirt domain XML document");
    return NULL;
  }
  return doc;
}

xmlNodePtr
vb_xml_child (xmlNodePtr parent, const char *name)
{
  for (xmlNodePtr n = parent ? parent->children : NULL; n; n = n->next)
    if (n->type == XML_ELEMENT_NODE && xmlStrcmp (n->name, BAD_CAST name) == 0)
      return n;
  return NULL;
}

/* Unlink N with the indentation before it, so no blank line remains. */
static void
drop (xmlNodePtr n)
{
  xmlNodePtr prev = n->prev;

  if (prev && xmlNodeIsText (prev) && xmlIsBlankNode (prev)) {
    xmlUnlinkNode (prev);
    xmlFreeNode (prev);
  }
  xmlUnlinkNode (n);
  xmlFreeNode (n);
}

void
vb_xml_remove_children (xmlNodePtr parent, const char *name)
{
  xmlNodePtr n;

  while ((n = vb_xml_child (parent, name)) != NULL)
    drop (n);
}

char *
vb_domain_xml_name (const char *xml, size_t len)
{
  xmlDocPtr doc = parse (xml, len);
  xmlNodePtr n;
  xmlChar *s;
  char *ret = NULL;

  if (!doc)
    return NULL;
  n = vb_xml_child (xmlDocGetRootElement (doc), "name");
  if (n && (s = xmlNodeGetContent (n))) {
    ret = strdup ((char *) s);
    xmlFree (s);
  }
  xmlFreeDoc (doc);
  if (!ret)
    vb_set_error ("the domain XML has no <name>");
  return ret;
}

static const struct vb_xml_disk *
find_disk (xmlNodePtr disk, const struct vb_xml_disk *disks, size_t n)
{
  xmlNodePtr t = vb_xml_child (disk, "target");
  xmlChar *dev = t ? xmlGetProp (t, BAD_CAST "dev") : NULL;
  const struct vb_xml_disk *ret = NULL;

  for (size_t i = 0; dev && i < n && !ret; i++)
    if (strcmp ((char *) dev, disks[i].target) == 0)
      ret = &disks[i];
  xmlFree (dev);
  return ret;
}

/* Point DISK at the restored image. */
static void
retarget (xmlNodePtr disk, const struct vb_xml_disk *d)
{
  xmlNodePtr src = vb_xml_child (disk, "source"), drv = vb_xml_child (disk, "driver");

  vb_xml_remove_children (disk, "backingStore");
  xmlSetProp (disk, BAD_CAST "type", BAD_CAST (d->block ? "block" : "file"));
  if (src) {
    /* Replace it in place, dropping attributes of the old host's source
     * (pool, volume, protocol) along with it. */
    xmlNodePtr nsrc = xmlNewNode (NULL, BAD_CAST "source");
    xmlReplaceNode (src, nsrc);
    xmlFreeNode (src);
    src = nsrc;
  }
  else
    src = xmlNewChild (disk, NULL, BAD_CAST "source", NULL);
  xmlSetProp (src, BAD_CAST (d->block ? "dev" : "file"), BAD_CAST d->path);
  if (!drv) {
    drv = xmlNewChild (disk, NULL, BAD_CAST "driver", NULL);
    xmlSetProp (drv, BAD_CAST "name", BAD_CAST "qemu");
  }
  xmlSetProp (drv, BAD_CAST "type", BAD_CAST d->format);
}

static void
adjust_disks (xmlNodePtr devices, const struct vb_xml_disk *disks, size_t n)
{
  xmlNodePtr next;

  for (xmlNodePtr dn = devices ? devices->children : NULL; dn; dn = next) {
    xmlChar *dev;
    bool media;
    const struct vb_xml_disk *d;

    next = dn->next;
    if (dn->type != XML_ELEMENT_NODE || xmlStrcmp (dn->name, BAD_CAST "disk"))
      continue;
    dev = xmlGetProp (dn, BAD_CAST "device");
    media = dev && (!xmlStrcmp (dev, BAD_CAST "cdrom") ||
                    !xmlStrcmp (dev, BAD_CAST "floppy"));
    xmlFree (dev);
    if (media) {
      /* The old host's ISO paths mean nothing here. */
      vb_xml_remove_children (dn, "source");
      continue;
    }
    if ((d = find_disk (dn, disks, n)) != NULL)
      retarget (dn, d);
    else
      drop (dn);
  }
}

/* PATH for domain NEW where it was OLD's: the old name in its file name
 * becomes the new one, or the new name goes in front of it. */
static char *
renamed_path (const char *path, const char *old, const char *new)
{
  const char *base = strrchr (path, '/');
  const char *at;

  base = base ? base + 1 : path;
  at = old && *old ? strstr (base, old) : NULL;
  if (at)
    return vb_xasprintf ("%.*s%s%s", (int) (at - path), path, new,
                         at + strlen (old));
  return vb_xasprintf ("%.*s%s-%s", (int) (base - path), path, new, base);
}

static void
rename_attr (xmlNodePtr n, const char *attr, const char *old, const char *new)
{
  xmlChar *v = xmlGetProp (n, BAD_CAST attr);
  char *p = v ? renamed_path ((const char *) v, old, new) : NULL;

  if (p)
    xmlSetProp (n, BAD_CAST attr, BAD_CAST p);
  free (p);
  xmlFree (v);
}

/* A console, serial port or channel written to a file (or logged to one)
 * would share the original domain's file, which virtlogd refuses while
 * that domain runs: each gets a file of the new domain's name. */
static void
adjust_char_files (xmlNodePtr devices, const char *old, const char *new)
{
  static const char *const kinds[] = { "serial", "console", "parallel",
                                       "channel", NULL };

  for (xmlNodePtr n = devices ? devices->children : NULL; n; n = n->next) {
    xmlChar *type;
    bool file = false;
    bool kind = false;
    for (const char *const *k = kinds; *k; k++)
      kind |= n->type == XML_ELEMENT_NODE &&
              xmlStrcmp (n->name, BAD_CAST *k) == 0;
    if (!kind)
      continue;
    type = xmlGetProp (n, BAD_CAST "type");
    file = type && xmlStrcmp (type, BAD_CAST "file") == 0;
    xmlFree (type);
    if (file && vb_xml_child (n, "source"))
      rename_attr (vb_xml_child (n, "source"), "path", old, new);
    if (vb_xml_child (n, "log"))
      rename_attr (vb_xml_child (n, "log"), "file", old, new);
  }
}

char *
vb_adjust_domain_xml (const char *xml, size_t len,
                      const struct vb_xml_disk *disks, size_t ndisks,
                      const char *name)
{
  xmlDocPtr doc = parse (xml, len);
  xmlNodePtr root, nm;
  xmlChar *old, *out = NULL;
  int outlen = 0;
  char *ret;

  if (!doc)
    return NULL;
  root = xmlDocGetRootElement (doc);
  vb_xml_remove_children (root, "uuid");
  xmlUnsetProp (root, BAD_CAST "id");     /* saved from a running domain */
  nm = vb_xml_child (root, "name");
  if (!nm)
    nm = xmlNewChild (root, NULL, BAD_CAST "name", NULL);
  old = xmlNodeGetContent (nm);
  xmlNodeSetContent (nm, BAD_CAST name);
  adjust_disks (vb_xml_child (root, "devices"), disks, ndisks);
  adjust_char_files (vb_xml_child (root, "devices"), (const char *) old, name);
  xmlFree (old);
  xmlDocDumpFormatMemory (doc, &out, &outlen, 0);
  xmlFreeDoc (doc);
  ret = out ? strndup ((char *) out, outlen) : NULL;
  xmlFree (out);
  if (!ret)
    vb_set_error ("cannot serialise the adjusted domain XML");
  return ret;
}

int
vb_check_domain_name_free (const char *uri, const char *name)
{
  int r = vb_domain_exists (uri, name);

  if (r == 1)
    vb_set_error ("a domain named '%s' exists already in libvirt: give "
                  "another name with -N NAME", name);
  return r == 0 ? 0 : -1;
}
