/* SPDX-License-Identifier: GPL-3.0-or-later */
/* checkpoint.c: list, read, delete and redefine a domain's checkpoints. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "virt/virt.h"

struct cp_entry {
  char *name;
  long long created;     /* <creationTime>, seconds */
  size_t topo;           /* index in libvirt's parents-first order */
};

/* Creation times have a resolution of one second, so two checkpoints of
 * one second tie: the topological order (parent first) breaks the tie. */
static int
cp_compare (const void *a, const void *b)
{
  const struct cp_entry *x = a, *y = b;

  if (x->created != y->created)
    return x->created < y->created ? -1 : 1;
  return x->topo < y->topo ? -1 : x->topo > y->topo;
}

static int
cp_read (virDomainCheckpointPtr cp, size_t topo, struct cp_entry *e)
{
  CLEANUP_FREE char *xml = NULL;
  CLEANUP_FREE char *created = NULL;
  const char *name = virDomainCheckpointGetName (cp);

  e->topo = topo;
  xml = virDomainCheckpointGetXMLDesc (cp, VIR_DOMAIN_CHECKPOINT_XML_NO_DOMAIN);
  if (xml == NULL) {
    vb_virt_set_error ("checkpoint '%s'", name);
    return -1;
  }
  created = vb_xml_string (xml, "/domaincheckpoint/creationTime");
  e->created = created ? strtoll (created, NULL, 10) : 0;
  e->name = strdup (name);
  if (e->name == NULL) {
    vb_set_error_errno (ENOMEM, "checkpoint '%s'", name);
    return -1;
  }
  return 0;
}

/* Fill the name vector from sorted entries, handing over the names. */
static char **
cp_names (struct cp_entry *v, size_t n)
{
  char **names = calloc (n + 1, sizeof *names);

  if (names == NULL) {
    vb_set_error_errno (ENOMEM, "checkpoint list");
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    names[i] = v[i].name;
    v[i].name = NULL;
  }
  return names;
}

char **
vb_checkpoint_list (struct vb_domain *d)
{
  virDomainCheckpointPtr *cps = NULL;
  struct cp_entry *v;
  char **names = NULL;
  int n, i;

  n = virDomainListAllCheckpoints (d->dom, &cps,
                                   VIR_DOMAIN_CHECKPOINT_LIST_TOPOLOGICAL);
  if (n < 0) {
    vb_virt_set_error ("domain '%s': list checkpoints", d->name);
    return NULL;
  }
  v = calloc (n + 1, sizeof *v);
  if (v == NULL)
    vb_set_error_errno (ENOMEM, "domain '%s': list checkpoints", d->name);
  for (i = 0; v && i < n; i++)
    if (cp_read (cps[i], i, &v[i]) < 0)
      break;
  if (v && i == n) {
    qsort (v, n, sizeof *v, cp_compare);
    names = cp_names (v, n);
  }
  for (i = 0; i < n; i++) {
    if (v)
      free (v[i].name);
    virDomainCheckpointFree (cps[i]);
  }
  free (v);
  free (cps);
  return names;
}

static virDomainCheckpointPtr
cp_lookup (struct vb_domain *d, const char *name)
{
  virDomainCheckpointPtr cp = virDomainCheckpointLookupByName (d->dom, name, 0);

  if (cp == NULL)
    vb_virt_set_error ("domain '%s': checkpoint '%s'", d->name, name);
  return cp;
}

char *
vb_checkpoint_xml (struct vb_domain *d, const char *name)
{
  virDomainCheckpointPtr cp = cp_lookup (d, name);
  char *xml;

  if (cp == NULL)
    return NULL;
  /* Plain flags: the embedded domain XML then holds no secrets. */
  xml = virDomainCheckpointGetXMLDesc (cp, 0);
  if (xml == NULL)
    vb_virt_set_error ("domain '%s': checkpoint '%s': get XML", d->name, name);
  virDomainCheckpointFree (cp);
  return xml;
}

int
vb_checkpoint_of_job (struct vb_domain *d, const char *name)
{
  CLEANUP_FREE char *xml = vb_checkpoint_xml (d, name);
  CLEANUP_FREE char *desc = NULL;

  if (!xml)
    return -1;
  desc = vb_xml_string (xml, "string(/domaincheckpoint/description)");
  return desc && !strcmp (desc, VB_CHECKPOINT_OF_JOB);
}

int
vb_checkpoint_delete (struct vb_domain *d, const char *name,
                      bool metadata_only)
{
  virDomainCheckpointPtr cp = cp_lookup (d, name);
  unsigned flags = metadata_only ? VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY : 0;
  int r;

  if (cp == NULL)
    return -1;
  r = virDomainCheckpointDelete (cp, flags);
  if (r < 0)
    vb_virt_set_error ("domain '%s': delete checkpoint '%s'", d->name, name);
  virDomainCheckpointFree (cp);
  return r < 0 ? -1 : 0;
}

int
vb_checkpoint_redefine (struct vb_domain *d, const char *xml, bool validate)
{
  unsigned flags = VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE;
  virDomainCheckpointPtr cp;
  CLEANUP_FREE char *name = vb_checkpoint_name_from_xml (xml);

  if (name == NULL)
    return -1;
  if (validate)
    flags |= VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE_VALIDATE;
  cp = virDomainCheckpointCreateXML (d->dom, xml, flags);
  if (cp == NULL) {
    vb_virt_set_error ("domain '%s': redefine checkpoint '%s'", d->name, name);
    return -1;
  }
  virDomainCheckpointFree (cp);
  return 0;
}

bool
vb_checkpoint_exists (struct vb_domain *d, const char *name)
{
  virDomainCheckpointPtr cp = virDomainCheckpointLookupByName (d->dom, name, 0);

  if (cp == NULL)
    return false;
  virDomainCheckpointFree (cp);
  return true;
}

char *
vb_checkpoint_name_from_xml (const char *xml)
{
  char *name = vb_xml_string (xml, "/domaincheckpoint/name");

  if (name == NULL)
    vb_prefix_error ("checkpoint XML");
  return name;
}

/* ---- identity ---- */

long long
vb_checkpoint_created (const char *xml)
{
  CLEANUP_FREE char *s = vb_xml_string (xml, "/domaincheckpoint/creationTime");
  char *end;
  long long t;

  if (s == NULL) {
    vb_prefix_error ("checkpoint XML");
    return -1;
  }
  errno = 0;
  t = strtoll (s, &end, 10);
  if (errno || end == s || *end || t < 0) {
    vb_set_error ("checkpoint XML: creationTime '%s' is not a time", s);
    return -1;
  }
  return t;
}

static void
local_time (long long t, char *buf, size_t len)
{
  time_t tt = (time_t) t;
  struct tm tm;

  if (!localtime_r (&tt, &tm) ||
      strftime (buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
    snprintf (buf, len, "%lld", t);
}

/* What tells two checkpoints of one name apart.  The parent's name, the
 * disks and their bitmaps (named after the checkpoint) are alike for the
 * checkpoints at one place of two chains of one domain, so they say
 * nothing.  The creation time does, to the second; virtback's own runs keep
 * a new checkpoint out of the second of one they replace (chain_plan.c).
 * The uuid of the embedded domain tells a domain re-created under the same
 * name; XML saved without the domain is judged by the rest. */
int
vb_checkpoint_same (const char *saved, const char *live)
{
  CLEANUP_FREE char *n1 = vb_checkpoint_name_from_xml (saved);
  CLEANUP_FREE char *n2 = n1 ? vb_checkpoint_name_from_xml (live) : NULL;
  CLEANUP_FREE char *u1 = NULL, *u2 = NULL;
  long long t1, t2;
  char b1[64], b2[64];

  if (n2 == NULL || (t1 = vb_checkpoint_created (saved)) < 0 ||
      (t2 = vb_checkpoint_created (live)) < 0)
    return -1;
  if (strcmp (n1, n2) != 0) {
    vb_set_error ("libvirt's is named '%s', the chain's '%s'", n2, n1);
    return 0;
  }
  if (t1 != t2) {
    local_time (t1, b1, sizeof b1);
    local_time (t2, b2, sizeof b2);
    vb_set_error ("libvirt's was created %s, the chain's %s", b2, b1);
    return 0;
  }
  u1 = vb_xml_string (saved, "/domaincheckpoint/domain/uuid");
  u2 = vb_xml_string (live, "/domaincheckpoint/domain/uuid");
  if (u1 && u2 && strcmp (u1, u2) != 0) {
    vb_set_error ("libvirt's belongs to the domain with uuid %s, the "
                  "chain's to %s", u2, u1);
    return 0;
  }
  return 1;
}

int
vb_checkpoint_matches (struct vb_domain *d, const char *name,
                       const char *saved)
{
  CLEANUP_FREE char *live = vb_checkpoint_xml (d, name);

  if (live == NULL)
    return -1;
  return vb_checkpoint_same (saved, live);
}
