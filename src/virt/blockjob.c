/* SPDX-License-Identifier: GPL-3.0-or-later */
/* blockjob.c: the libvirt side of instant recovery: define and start a
 * domain, pull its disks' backing into them (virDomainBlockPull), watch
 * and end those jobs, and tell whether a disk still has a backing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "virt/virt.h"

static void
quiet (void *opaque, virErrorPtr err)
{
  (void) opaque;
  (void) err;
}

char *
vb_domain_create (const char *uri, const char *xml)
{
  virConnectPtr conn;
  virDomainPtr dom;
  char *name = NULL;

  virSetErrorFunc (NULL, quiet);
  if (!(conn = virConnectOpen (uri ? uri : "qemu:///system"))) {
    vb_virt_set_error ("cannot connect to %s", uri ? uri : "qemu:///system");
    return NULL;
  }
  if (!(dom = virDomainDefineXML (conn, xml)))
    vb_virt_set_error ("define the domain");
  else if (virDomainCreate (dom) < 0) {
    vb_virt_set_error ("start the domain");   /* GetName would reset the error */
    virDomainUndefineFlags (dom, VIR_DOMAIN_UNDEFINE_NVRAM |
                            VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA);
  }
  else if (!(name = strdup (virDomainGetName (dom))))
    vb_set_error_errno (ENOMEM, "domain name");
  if (dom)
    virDomainFree (dom);
  virConnectClose (conn);
  return name;
}

int
vb_domain_remove (struct vb_domain *d)
{
  int r = 0;

  if (virDomainIsActive (d->dom) == 1 && virDomainDestroy (d->dom) < 0)
    r = -1, vb_virt_set_error ("domain '%s': destroy", d->name);
  if (virDomainUndefineFlags (d->dom, VIR_DOMAIN_UNDEFINE_NVRAM |
                              VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA) < 0)
    r = -1, vb_virt_set_error ("domain '%s': undefine", d->name);
  return r;
}

int
vb_domain_start (struct vb_domain *d)
{
  if (virDomainCreate (d->dom) < 0) {
    vb_virt_set_error ("start domain '%s'", d->name);
    return -1;
  }
  d->running = true;
  return 0;
}

int
vb_domain_unpause (struct vb_domain *d)
{
  int state, reason;

  if (virDomainGetState (d->dom, &state, &reason, 0) < 0) {
    vb_virt_set_error ("domain '%s': state", d->name);
    return -1;
  }
  if (state != VIR_DOMAIN_PAUSED || virDomainResume (d->dom) == 0)
    return 0;
  vb_virt_set_error ("domain '%s': resume", d->name);
  return -1;
}

int
vb_block_pull (struct vb_domain *d, const char *target, uint64_t bandwidth)
{
  if (virDomainBlockPull (d->dom, target, bandwidth,
                          VIR_DOMAIN_BLOCK_PULL_BANDWIDTH_BYTES) < 0) {
    vb_virt_set_error ("domain '%s': disk %s: start the block pull",
                       d->name, target);
    return -1;
  }
  return 0;
}

int
vb_block_job (struct vb_domain *d, const char *target, uint64_t *cur,
              uint64_t *end)
{
  virDomainBlockJobInfo info;
  int r = virDomainGetBlockJobInfo (d->dom, target, &info,
                                    VIR_DOMAIN_BLOCK_JOB_INFO_BANDWIDTH_BYTES);

  if (r < 0) {
    vb_virt_set_error ("domain '%s': disk %s: block job", d->name, target);
    return -1;
  }
  if (r == 1 && cur && end)
    *cur = info.cur, *end = info.end;
  return r;
}

int
vb_block_job_speed (struct vb_domain *d, const char *target,
                    uint64_t bandwidth)
{
  if (virDomainBlockJobSetSpeed (d->dom, target, bandwidth,
                                 VIR_DOMAIN_BLOCK_JOB_SPEED_BANDWIDTH_BYTES)
      < 0) {
    vb_virt_set_error ("domain '%s': disk %s: set the job's speed", d->name,
                       target);
    return -1;
  }
  return 0;
}

int
vb_disk_backing (struct vb_domain *d, const char *target)
{
  CLEANUP_FREE char *xml = virDomainGetXMLDesc (d->dom, 0), *xp = NULL;
  CLEANUP_FREE char *n = NULL;

  if (!xml) {
    vb_virt_set_error ("domain '%s': get XML", d->name);
    return -1;
  }
  if (asprintf (&xp, "count(/domain/devices/disk[target/@dev='%s']"
                "/backingStore/source)", target) < 0)
    return -1;
  if (!(n = vb_xml_string (xml, xp)))
    return -1;
  return strcmp (n, "0") != 0;
}
