/* SPDX-License-Identifier: GPL-3.0-or-later */
/* define.c: the libvirt calls of a restore: is a domain name taken, and
 * define a domain from XML.  Each opens its own connection, since a
 * restore has no domain of its own (struct vb_domain) to carry one. */
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/error.h"
#include "virt/virt.h"

static void
quiet (void *opaque, virErrorPtr err)
{
  (void) opaque;
  (void) err;
}

static virConnectPtr
connect_uri (const char *uri)
{
  virConnectPtr conn;

  virSetErrorFunc (NULL, quiet);
  conn = vb_virt_connect (uri ? uri : "qemu:///system");
  if (!conn)
    vb_prefix_error ("connect to libvirt (is libvirtd running?)");
  return conn;
}

int
vb_domain_exists (const char *uri, const char *name)
{
  virConnectPtr conn = connect_uri (uri);
  virDomainPtr dom;

  if (!conn)
    return -1;
  dom = virDomainLookupByName (conn, name);
  if (dom)
    virDomainFree (dom);
  virConnectClose (conn);
  return dom ? 1 : 0;
}

char *
vb_define_domain (const char *uri, const char *xml)
{
  virConnectPtr conn = connect_uri (uri);
  virDomainPtr dom;
  char *name = NULL;

  if (!conn)
    return NULL;
  dom = virDomainDefineXML (conn, xml);
  if (!dom)
    vb_set_error ("define the restored domain: %s", virGetLastErrorMessage ());
  else {
    const char *n = virDomainGetName (dom);
    name = n ? strdup (n) : NULL;
    virDomainFree (dom);
  }
  virConnectClose (conn);
  return name;
}

/* The domain lives on our connection alone (VIR_DOMAIN_START_AUTODESTROY):
 * libvirtd destroys it when the connection closes, so even a killed
 * virtback leaves nothing running, and nothing was ever defined. */
struct vb_domain *
vb_domain_create_transient (const char *uri, const char *xml)
{
  virConnectPtr conn = connect_uri (uri);
  struct vb_domain *d;
  virDomainPtr dom;

  if (!conn)
    return NULL;
  if (!(dom = virDomainCreateXML (conn, xml, VIR_DOMAIN_START_AUTODESTROY))) {
    vb_virt_set_error ("start the domain");
    virConnectClose (conn);
    return NULL;
  }
  if (!(d = calloc (1, sizeof *d)) ||
      !(d->name = strdup (virDomainGetName (dom)))) {
    free (d);
    virDomainDestroy (dom);
    virDomainFree (dom);
    virConnectClose (conn);
    vb_set_error ("out of memory");
    return NULL;
  }
  d->conn = conn;
  d->dom = dom;
  d->running = true;
  return d;
}

int
vb_domain_destroy (struct vb_domain *d)
{
  if (virDomainIsActive (d->dom) != 1 || virDomainDestroy (d->dom) == 0)
    return 0;
  vb_virt_set_error ("domain '%s': destroy", d->name);
  return -1;
}
