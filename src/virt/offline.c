/* Checkpoints of a shut-off domain.  libvirt 9 refuses to create or delete
 * them ("cannot ... checkpoint for inactive domain"), so virtback does what
 * libvirt would do when the domain runs: the persistent bitmaps in the
 * qcow2 images with qemu-img, and the checkpoint metadata by redefinition.
 * When the domain starts, QEMU loads these bitmaps and libvirt uses them
 * like its own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/proc.h"
#include "virt/virt.h"

static bool
is_qcow2 (const struct vb_disk *disk)
{
  return disk->skip == VB_DISK_BACKUP && disk->path &&
         disk->format && !strcmp (disk->format, "qcow2");
}

int
vb_image_bitmap_state (const char *path, const char *name)
{
  CLEANUP_FREE char *info = vb_qemu_img_info (path);
  struct json_object *j, *fs, *data, *bms;
  int state = 0;

  if (!info)
    return -1;
  if (!(j = json_tokener_parse (info))) {
    vb_set_error ("%s: cannot parse qemu-img info", path);
    return -1;
  }
  if (json_object_object_get_ex (j, "format-specific", &fs) &&
      json_object_object_get_ex (fs, "data", &data) &&
      json_object_object_get_ex (data, "bitmaps", &bms)) {
    for (size_t i = 0; i < json_object_array_length (bms); i++) {
      struct json_object *b = json_object_array_get_idx (bms, i), *n, *fl;
      if (!json_object_object_get_ex (b, "name", &n) ||
          strcmp (json_object_get_string (n), name))
        continue;
      state = VB_BITMAP_OK;
      if (json_object_object_get_ex (b, "flags", &fl))
        for (size_t k = 0; k < json_object_array_length (fl); k++)
          if (!strcmp (json_object_get_string
                       (json_object_array_get_idx (fl, k)), "in-use"))
            state = VB_BITMAP_INCONSISTENT;
    }
  }
  json_object_put (j);
  return state;
}

static int
qemu_img_bitmap (const char *op, const char *path, const char *name)
{
  char *argv[] = { "qemu-img", "bitmap", (char *) op, "-f", "qcow2",
                   (char *) path, (char *) name, NULL };
  char *enable[] = { "qemu-img", "bitmap", (char *) op, "--enable", "-f",
                     "qcow2", (char *) path, (char *) name, NULL };

  if (vb_proc_run (strcmp (op, "--add") ? argv : enable) < 0) {
    vb_prefix_error ("%s: bitmap %s", path, name);
    return -1;
  }
  return 0;
}

static char *
offline_checkpoint_xml (struct vb_domain *d, const char *name,
                        const char *parent, const char *const *disks)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *fp = open_memstream (&buf, &len);

  if (!fp) {
    vb_set_error ("out of memory");
    return NULL;
  }
  fprintf (fp, "<domaincheckpoint>\n  <name>%s</name>\n", name);
  if (parent)
    fprintf (fp, "  <parent>\n    <name>%s</name>\n  </parent>\n", parent);
  fprintf (fp, "  <creationTime>%lld</creationTime>\n  <disks>\n",
           (long long) time (NULL));
  for (size_t i = 0; i < d->ndisks; i++) {
    bool chosen = false;
    for (const char *const *s = disks; *s; s++)
      chosen |= !strcmp (*s, d->disks[i].target);
    if (chosen)
      fprintf (fp, "    <disk name='%s' checkpoint='bitmap' bitmap='%s'/>\n",
               d->disks[i].target, name);
    else
      fprintf (fp, "    <disk name='%s' checkpoint='no'/>\n",
               d->disks[i].target);
  }
  fprintf (fp, "  </disks>\n%s</domaincheckpoint>\n", d->xml);
  fclose (fp);
  return buf;
}

int
vb_offline_checkpoint_create (struct vb_domain *d, const char *name,
                              const char *parent, const char *const *disks)
{
  CLEANUP_FREE char *xml = NULL;

  for (const char *const *s = disks; *s; s++) {
    const struct vb_disk *disk = vb_domain_find_disk (d, *s);
    if (!disk || !is_qcow2 (disk)) {
      vb_set_error ("disk %s: offline checkpoints need a qcow2 image", *s);
      return -1;
    }
    if (qemu_img_bitmap ("--add", disk->path, name) < 0)
      return -1;
  }
  if (!(xml = offline_checkpoint_xml (d, name, parent, disks)))
    return -1;
  return vb_checkpoint_redefine (d, xml, false);
}

int
vb_offline_checkpoint_delete (struct vb_domain *d, const char *name)
{
  for (size_t i = 0; i < d->ndisks; i++) {
    const struct vb_disk *disk = &d->disks[i];
    int st;
    if (!is_qcow2 (disk))
      continue;
    if ((st = vb_image_bitmap_state (disk->path, name)) < 0)
      return -1;
    if (st > 0 && qemu_img_bitmap ("--remove", disk->path, name) < 0)
      return -1;
  }
  if (vb_checkpoint_exists (d, name))
    return vb_checkpoint_delete (d, name, true);
  return 0;
}
