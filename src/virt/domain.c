/* SPDX-License-Identifier: GPL-3.0-or-later */
/* domain.c: connect, look up a domain and turn its XML into disks.
 * The XML helpers here (libxml2 + XPath, virt/xml.h) serve the whole unit. */
#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "remote/remote.h"
#include "virt/virt.h"
#include "virt/xml.h"

#define DEFAULT_URI "qemu:///system"

static void
free_xpath_ctx (xmlXPathContextPtr *p)
{
  if (*p)
    xmlXPathFreeContext (*p);
}

static void
free_xpath_obj (xmlXPathObjectPtr *p)
{
  if (*p)
    xmlXPathFreeObject (*p);
}

#define CLEANUP_XPCTX __attribute__((cleanup (free_xpath_ctx)))
#define CLEANUP_XPOBJ __attribute__((cleanup (free_xpath_obj)))

void
vb_virt_set_error (const char *fmt, ...)
{
  char ctx[512];
  va_list ap;
  const virError *e = virGetLastError ();

  va_start (ap, fmt);
  vsnprintf (ctx, sizeof ctx, fmt, ap);
  va_end (ap);
  vb_set_error ("%s: %s", ctx,
                e && e->message ? e->message : "unknown libvirt error");
}

/* libvirt prints every error to stderr by default; only the CLI prints. */
static void
quiet_error (void *opaque __attribute__((unused)),
             virErrorPtr err __attribute__((unused)))
{
}

xmlDocPtr
vb_xml_parse (const char *xml, const char *what)
{
  xmlDocPtr doc;

  if (xml == NULL) {
    vb_set_error ("%s: no XML", what);
    return NULL;
  }
  doc = xmlReadMemory (xml, strlen (xml), what, NULL,
                       XML_PARSE_NONET | XML_PARSE_NOERROR |
                       XML_PARSE_NOWARNING);
  if (doc == NULL) {
    const xmlError *e = xmlGetLastError ();
    const char *m = e && e->message ? e->message : "parse error";
    vb_set_error ("%s: invalid XML: %.*s (line %d)", what,
                  (int) strcspn (m, "\n"), m, e ? e->line : 0);
  }
  return doc;
}

xmlDocPtr
vb_xml_new_doc (const char *name, xmlNodePtr *root)
{
  xmlDocPtr doc = xmlNewDoc (BAD_CAST "1.0");

  *root = doc ? xmlNewNode (NULL, BAD_CAST name) : NULL;
  if (*root == NULL) {
    if (doc)
      xmlFreeDoc (doc);
    vb_set_error_errno (ENOMEM, "build XML <%s>", name);
    return NULL;
  }
  xmlDocSetRootElement (doc, *root);
  return doc;
}

char *
vb_xml_doc_string (xmlDocPtr doc)
{
  xmlBufferPtr buf = xmlBufferCreate ();
  char *r = NULL;

  if (buf && xmlNodeDump (buf, doc, xmlDocGetRootElement (doc), 0, 1) >= 0)
    r = strdup ((const char *) xmlBufferContent (buf));
  if (buf)
    xmlBufferFree (buf);
  if (r == NULL)
    vb_set_error_errno (ENOMEM, "build XML");
  return r;
}

/* Copy of an xmlChar string into plain malloc'd memory (NULL stays NULL). */
static char *
xml_steal (xmlChar *s)
{
  char *r;

  if (s == NULL)
    return NULL;
  r = strdup ((const char *) s);
  xmlFree (s);
  return r;
}

char *
vb_xml_string (const char *xml, const char *xpath)
{
  CLEANUP_XMLDOC xmlDocPtr doc = vb_xml_parse (xml, "XML");
  CLEANUP_XPCTX xmlXPathContextPtr ctx = NULL;
  CLEANUP_XPOBJ xmlXPathObjectPtr obj = NULL;
  char *r;

  if (doc == NULL)
    return NULL;
  ctx = xmlXPathNewContext (doc);
  if (ctx)
    obj = xmlXPathEvalExpression (BAD_CAST xpath, ctx);
  if (obj == NULL ||
      (obj->type == XPATH_NODESET &&
       xmlXPathNodeSetIsEmpty (obj->nodesetval))) {
    vb_set_error ("XML: nothing at %s", xpath);
    return NULL;
  }
  /* libxml2 prints large numbers in exponent form; sizes need digits. */
  if (obj->type == XPATH_NUMBER) {
    if (asprintf (&r, "%.0f", obj->floatval) < 0)
      r = NULL;
  }
  else
    r = xml_steal (xmlXPathCastToString (obj));
  if (r == NULL)
    vb_set_error_errno (ENOMEM, "XML: %s", xpath);
  return r;
}

/* Attribute ATTR of the first child element CHILD of NODE
 * (NODE's own attribute when CHILD is NULL). */
static char *
child_attr (xmlNodePtr node, const char *child, const char *attr)
{
  if (child) {
    xmlNodePtr c;
    for (c = node->children; c; c = c->next)
      if (c->type == XML_ELEMENT_NODE &&
          strcmp ((const char *) c->name, child) == 0)
        break;
    if (c == NULL)
      return NULL;
    node = c;
  }
  return xml_steal (xmlGetProp (node, BAD_CAST attr));
}

static bool
has_child (xmlNodePtr node, const char *child)
{
  for (xmlNodePtr c = node->children; c; c = c->next)
    if (c->type == XML_ELEMENT_NODE &&
        strcmp ((const char *) c->name, child) == 0)
      return true;
  return false;
}

void
vb_disks_free (struct vb_disk *disks, size_t n)
{
  for (size_t i = 0; disks && i < n; i++) {
    free (disks[i].target);
    free (disks[i].device);
    free (disks[i].format);
    free (disks[i].path);
    free (disks[i].alias);
  }
  free (disks);
}

/* The target names a file in the backup directory: keep it inside. */
static int
check_target (const char *t)
{
  if (t == NULL || *t == '\0') {
    vb_set_error ("domain XML: disk without a target name");
    return -1;
  }
  if (strchr (t, '/') || strcmp (t, ".") == 0 || strcmp (t, "..") == 0) {
    vb_set_error ("domain XML: disk target '%s' is not a plain name", t);
    return -1;
  }
  return 0;
}

static enum vb_disk_skip
disk_skip (const struct vb_disk *disk, bool has_source, bool include_raw)
{
  if (strcmp (disk->device, "disk") != 0)
    return VB_DISK_SKIP_DEVICE;
  if (!has_source)
    return VB_DISK_SKIP_NOSOURCE;
  if (disk->format && strcmp (disk->format, "raw") == 0 && !include_raw)
    return VB_DISK_SKIP_RAW;
  return VB_DISK_BACKUP;
}

static int
parse_disk (xmlNodePtr node, bool include_raw, struct vb_disk *disk)
{
  disk->target = child_attr (node, "target", "dev");
  if (check_target (disk->target) < 0)
    return -1;
  disk->device = child_attr (node, NULL, "device");
  if (disk->device == NULL && (disk->device = strdup ("disk")) == NULL) {
    vb_set_error_errno (ENOMEM, "domain XML: disk %s", disk->target);
    return -1;
  }
  disk->format = child_attr (node, "driver", "type");
  disk->path = child_attr (node, "source", "file");
  if (disk->path == NULL)
    disk->path = child_attr (node, "source", "dev");
  disk->alias = child_attr (node, "alias", "name");
  disk->skip = disk_skip (disk, has_child (node, "source"), include_raw);
  return 0;
}

int
vb_parse_disks (const char *xml, bool include_raw,
                struct vb_disk **disks, size_t *ndisks)
{
  CLEANUP_XMLDOC xmlDocPtr doc = vb_xml_parse (xml, "domain XML");
  CLEANUP_XPCTX xmlXPathContextPtr ctx = NULL;
  CLEANUP_XPOBJ xmlXPathObjectPtr obj = NULL;
  struct vb_disk *v;
  size_t n;

  if (doc == NULL)
    return -1;
  ctx = xmlXPathNewContext (doc);
  if (ctx)
    obj = xmlXPathEvalExpression (BAD_CAST "/domain/devices/disk", ctx);
  if (obj == NULL || obj->type != XPATH_NODESET) {
    vb_set_error ("domain XML: cannot evaluate the disk list");
    return -1;
  }
  n = obj->nodesetval ? (size_t) obj->nodesetval->nodeNr : 0;
  v = calloc (n ? n : 1, sizeof *v);
  if (v == NULL) {
    vb_set_error_errno (errno, "domain XML: disks");
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    if (parse_disk (obj->nodesetval->nodeTab[i], include_raw, &v[i]) < 0) {
      vb_disks_free (v, n);
      return -1;
    }
  }
  *disks = v;
  *ndisks = n;
  return 0;
}

const struct vb_disk *
vb_domain_find_disk (const struct vb_domain *d, const char *target)
{
  for (size_t i = 0; i < d->ndisks; i++)
    if (strcmp (d->disks[i].target, target) == 0)
      return &d->disks[i];
  return NULL;
}

static int
lookup (struct vb_domain *d, const char *uri)
{
  const virError *e;

  virSetErrorFunc (NULL, quiet_error);
  d->conn = vb_virt_connect (uri);
  if (d->conn == NULL)
    return -1;
  d->dom = virDomainLookupByName (d->conn, d->name);
  if (d->dom)
    return 0;
  e = virGetLastError ();
  if (e && e->code == VIR_ERR_NO_DOMAIN)
    vb_set_error ("domain '%s' does not exist", d->name);
  else
    vb_virt_set_error ("domain '%s'", d->name);
  return -1;
}

static int
read_domain (struct vb_domain *d, bool include_raw)
{
  char uuid[VIR_UUID_STRING_BUFLEN];

  if (virDomainGetUUIDString (d->dom, uuid) < 0 ||
      (d->uuid = strdup (uuid)) == NULL) {
    vb_virt_set_error ("domain '%s': uuid", d->name);
    return -1;
  }
  if (vb_domain_refresh (d) < 0)
    return -1;
  /* Flags 0, not VIR_DOMAIN_XML_SECURE: this XML is saved with the backup
   * and must not carry passwords. */
  d->xml = virDomainGetXMLDesc (d->dom, 0);
  if (d->xml == NULL) {
    vb_virt_set_error ("domain '%s': get XML", d->name);
    return -1;
  }
  if (vb_parse_disks (d->xml, include_raw, &d->disks, &d->ndisks) < 0) {
    vb_prefix_error ("domain '%s'", d->name);
    return -1;
  }
  return 0;
}

struct vb_domain *
vb_domain_new (const char *uri, const char *name)
{
  struct vb_domain *d = calloc (1, sizeof *d);
  struct vb_remote r;
  int remote;

  if (d == NULL || (d->name = strdup (name)) == NULL) {
    vb_set_error_errno (ENOMEM, "domain '%s'", name);
    free (d);
    return NULL;
  }
  remote = vb_remote_parse (uri, &r);
  if (remote > 0 && !(d->remote = vb_remote_dup (&r)))
    remote = -1;
  /* Its ssh handshake runs while libvirt makes its own. */
  if (remote > 0) {
    d->remote->timeout = vb_virt_get_timeout ();
    vb_remote_session_start (d->remote);
  }
  vb_remote_clear (&r);
  if (remote < 0) {
    vb_domain_close (d);
    return NULL;
  }
  return d;
}

int
vb_domain_connect (struct vb_domain *d, const char *uri, bool include_raw)
{
  return lookup (d, uri ? uri : DEFAULT_URI) < 0 ||
         read_domain (d, include_raw) < 0 ? -1 : 0;
}

struct vb_domain *
vb_domain_open (const char *uri, const char *name, bool include_raw)
{
  struct vb_domain *d = vb_domain_new (uri, name);

  if (d && vb_domain_connect (d, uri, include_raw) < 0) {
    vb_domain_close (d);
    return NULL;
  }
  return d;
}

void
vb_domain_close (struct vb_domain *d)
{
  if (d == NULL)
    return;
  if (d->dom)
    virDomainFree (d->dom);
  if (d->conn)
    virConnectClose (d->conn);
  vb_disks_free (d->disks, d->ndisks);
  vb_remote_free (d->remote);
  free (d->name);
  free (d->uuid);
  free (d->xml);
  free (d);
}

int
vb_domain_refresh (struct vb_domain *d)
{
  int r = virDomainIsActive (d->dom);

  if (r < 0) {
    vb_virt_set_error ("domain '%s': get state", d->name);
    return -1;
  }
  d->running = r == 1;
  return 0;
}

bool
vb_domain_reachable (struct vb_domain *d)
{
  return d && d->conn && virConnectIsAlive (d->conn) == 1;
}

/* "+64055:+64055" (numeric) or "user:group" (names). */
static int
gid_from_label (const char *label, gid_t *gid)
{
  const char *g = strchr (label, ':');
  struct group *gr;

  if (g == NULL || g[1] == '\0')
    return -1;
  g++;
  if (*g == '+') {
    char *end;
    unsigned long v;
    errno = 0;
    v = strtoul (g + 1, &end, 10);
    if (errno || end == g + 1 || *end)
      return -1;
    *gid = (gid_t) v;
    return 0;
  }
  gr = getgrnam (g);
  if (gr == NULL)
    return -1;
  *gid = gr->gr_gid;
  return 0;
}

int
vb_domain_qemu_gid (const struct vb_domain *d, gid_t *gid)
{
  CLEANUP_FREE char *label = NULL;
  struct group *gr;

  if (d->running && d->xml)
    label = vb_xml_string (d->xml, "/domain/seclabel[@model='dac']/label");
  if (label && gid_from_label (label, gid) == 0)
    return 0;
  gr = getgrnam ("libvirt-qemu");
  if (gr == NULL) {
    vb_set_error ("domain '%s': cannot tell which group QEMU runs as",
                  d->name);
    return -1;
  }
  *gid = gr->gr_gid;
  return 0;
}
