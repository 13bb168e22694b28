/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Checkpoints of a shut-off domain.  libvirt 9 refuses to create or delete
 * them ("cannot ... checkpoint for inactive domain"), so virtback does what
 * libvirt would do when the domain runs: the persistent bitmaps in the
 * qcow2 images with qemu-img, and the checkpoint metadata by redefinition.
 * When the domain starts, QEMU loads these bitmaps and libvirt uses them
 * like its own.  On a remote host (d->remote) the same qemu-img runs
 * there over ssh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "nbd/qemu_nbd.h"
#include "remote/remote.h"
#include "virt/virt.h"
#include "virt/xml.h"

static bool
is_qcow2 (const struct vb_disk *disk)
{
  return disk->skip == VB_DISK_BACKUP && disk->path &&
         disk->format && !strcmp (disk->format, "qcow2");
}

int
vb_image_bitmap_state (struct vb_domain *d, const char *path,
                       const char *name)
{
  CLEANUP_IMAGE_INFO struct vb_image_info *info =
    vb_host_img_info (d->remote, path);
  const struct vb_image_bitmap *b;

  if (!info)
    return -1;
  if (!(b = vb_image_info_bitmap (info, name)))
    return 0;
  return b->in_use ? VB_BITMAP_INCONSISTENT : VB_BITMAP_OK;
}

static bool
chosen (const char *const *disks, const char *target)
{
  for (const char *const *s = disks; *s; s++)
    if (!strcmp (*s, target))
      return true;
  return false;
}

static void
add_disks (xmlNodePtr root, struct vb_domain *d, const char *name,
           const char *const *disks)
{
  xmlNodePtr list = xmlNewChild (root, NULL, BAD_CAST "disks", NULL);

  for (size_t i = 0; i < d->ndisks; i++) {
    xmlNodePtr disk = xmlNewChild (list, NULL, BAD_CAST "disk", NULL);
    bool on = chosen (disks, d->disks[i].target);
    xmlNewProp (disk, BAD_CAST "name", BAD_CAST d->disks[i].target);
    xmlNewProp (disk, BAD_CAST "checkpoint", BAD_CAST (on ? "bitmap" : "no"));
    if (on)
      xmlNewProp (disk, BAD_CAST "bitmap", BAD_CAST name);
  }
}

/* What libvirt itself would store: the redefinition needs the <domain>
 * the checkpoint belongs to, copied in as a parsed element. */
char *
vb_offline_checkpoint_xml (struct vb_domain *d, const char *name,
                        const char *parent, const char *const *disks)
{
  CLEANUP_XMLDOC xmlDocPtr dom = vb_xml_parse (d->xml, "domain XML");
  CLEANUP_XMLDOC xmlDocPtr doc = NULL;
  xmlNodePtr root, domain;
  char now[32];

  if (!dom || !(doc = vb_xml_new_doc ("domaincheckpoint", &root)))
    return NULL;
  xmlNewTextChild (root, NULL, BAD_CAST "name", BAD_CAST name);
  if (parent)
    xmlNewTextChild (xmlNewChild (root, NULL, BAD_CAST "parent", NULL),
                     NULL, BAD_CAST "name", BAD_CAST parent);
  snprintf (now, sizeof now, "%lld", (long long) time (NULL));
  xmlNewTextChild (root, NULL, BAD_CAST "creationTime", BAD_CAST now);
  add_disks (root, d, name, disks);
  domain = xmlDocCopyNode (xmlDocGetRootElement (dom), doc, 1);
  if (!domain || !xmlAddChild (root, domain)) {
    xmlFreeNode (domain);
    vb_set_error ("checkpoint %s: cannot copy the domain XML into it", name);
    return NULL;
  }
  return vb_xml_doc_string (doc);
}

/* Undo of a failed create, newest bitmap first.  The error of the step
 * that failed stays the one reported; a bitmap that cannot be removed is
 * named in it, with the command that removes it. */
static void
remove_added (struct vb_domain *d, const char *const *disks, size_t n,
              const char *name)
{
  CLEANUP_FREE char *why = strdup (vb_get_error ());
  const char *stuck = NULL;

  while (n-- > 0) {
    const struct vb_disk *disk = vb_domain_find_disk (d, disks[n]);
    if (vb_host_img_bitmap (d->remote, "--remove", disk->path, name) < 0)
      stuck = disk->path;
  }
  if (stuck)
    vb_set_error ("%s; bitmap %s is left in %s%s%s: remove it with "
                  "'qemu-img bitmap --remove %s %s'", why ? why : "", name,
                  stuck, d->remote ? " on host " : "",
                  d->remote ? d->remote->host : "", stuck, name);
  else
    vb_set_error_str (why);
}

static int
check_disks (struct vb_domain *d, const char *const *disks)
{
  for (const char *const *s = disks; *s; s++) {
    const struct vb_disk *disk = vb_domain_find_disk (d, *s);
    if (!disk || !is_qcow2 (disk)) {
      vb_set_error ("disk %s: offline checkpoints need a qcow2 image", *s);
      return -1;
    }
  }
  return 0;
}

/* All or nothing: a bitmap added to one disk is taken back when a later
 * disk or the metadata fails, so no failure leaves a stray bitmap that
 * would break the next full ("Bitmap already exists"). */
int
vb_offline_checkpoint_create (struct vb_domain *d, const char *name,
                              const char *parent, const char *const *disks)
{
  CLEANUP_FREE char *xml = NULL;
  size_t n = 0;

  if (check_disks (d, disks) < 0)
    return -1;
  for (; disks[n]; n++)
    if (vb_host_img_bitmap (d->remote, "--add",
                            vb_domain_find_disk (d, disks[n])->path, name) < 0)
      break;
  if (disks[n] == NULL &&
      (xml = vb_offline_checkpoint_xml (d, name, parent, disks)) != NULL &&
      vb_checkpoint_redefine (d, xml, false) == 0)
    return 0;
  remove_added (d, disks, n, name);
  return -1;
}

int
vb_offline_checkpoint_delete (struct vb_domain *d, const char *name)
{
  for (size_t i = 0; i < d->ndisks; i++) {
    const struct vb_disk *disk = &d->disks[i];
    int st;
    if (!is_qcow2 (disk))
      continue;
    if ((st = vb_image_bitmap_state (d, disk->path, name)) < 0)
      return -1;
    if (st > 0 &&
        vb_host_img_bitmap (d->remote, "--remove", disk->path, name) < 0)
      return -1;
  }
  if (vb_checkpoint_exists (d, name))
    return vb_checkpoint_delete (d, name, true);
  return 0;
}
