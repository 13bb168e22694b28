/* SPDX-License-Identifier: GPL-3.0-or-later */
/* xml.h: libxml2 helpers private to src/virt (defined in domain.c).
 *
 * Contract: every XML document virt/ hands to libvirt is built as a libxml2
 * tree and serialized here, never pasted together as text, so that names
 * and embedded documents are escaped or parsed, not interpreted.  Same
 * error convention: NULL after vb_set_error().
 */
#ifndef VB_VIRT_XML_H
#define VB_VIRT_XML_H

#include <libxml/tree.h>

static inline void
vb_xml_free_doc (xmlDocPtr *p)
{
  if (*p)
    xmlFreeDoc (*p);
}

#define CLEANUP_XMLDOC __attribute__((cleanup (vb_xml_free_doc)))

/* Parse XML without network access, entity expansion or stderr noise;
 * WHAT names the document in the error. */
xmlDocPtr vb_xml_parse (const char *xml, const char *what);
/* A new document whose root element is NAME; *ROOT is set to it. */
xmlDocPtr vb_xml_new_doc (const char *name, xmlNodePtr *root);
/* The root element as a malloc'd, indented string. */
char *vb_xml_doc_string (xmlDocPtr doc);

#endif
