/* SPDX-License-Identifier: GPL-3.0-or-later */
/* pointvm.c: the pieces of a VM run from a backup point that instant.c
 * and boot.c share.  See "a VM of a backup point" in internal.h. */
#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backupset/backupset.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "restore/internal.h"
#include "target/target.h"

void
vb_pvm_say (void (*progress) (void *op, const char *line), void *op,
            const char *fmt, ...)
{
  CLEANUP_FREE char *s = NULL;
  va_list ap;

  va_start (ap, fmt);
  if (vasprintf (&s, fmt, ap) < 0)
    s = NULL;
  va_end (ap);
  if (s && progress)
    progress (op, s);
}

bool
vb_pvm_cancelled (volatile sig_atomic_t *cancel)
{
  return cancel && __atomic_load_n (cancel, __ATOMIC_RELAXED);
}

const struct vb_chain_file *
vb_pvm_last_file (struct vb_chain *c, size_t i, const char *until)
{
  struct vb_chain_file **files = vb_chain_select (c, &c->disks[i], until);
  const struct vb_chain_file *last;
  size_t k = 0;

  if (!files)
    return NULL;
  while (files[k + 1])
    k++;
  last = files[k];
  free (files);
  return last;
}

char *
vb_pvm_read_xml (struct vb_target *t, const struct vb_chain_file *f,
                 char **name)
{
  CLEANUP_FREE char *parent = f->level == VB_LEVEL_DIFF
    ? vb_bset_vmconfig_name (f->meta.parent_checkpoint) : NULL;
  char *xml = NULL;

  *name = vb_bset_vmconfig_name (vb_chain_file_ident (f));
  if (*name && !(xml = vb_target_read (t, *name, NULL)) && parent)
    xml = vb_target_read (t, parent, NULL);
  return xml;
}

int
vb_pvm_share_dir (const char *dir)
{
  struct group *g = getgrnam ("libvirt-qemu");

  if ((g && chown (dir, -1, g->gr_gid) < 0) || chmod (dir, 0770) < 0) {
    vb_set_error_errno (errno, "%s: give QEMU's group access", dir);
    return -1;
  }
  return 0;
}

int
vb_pvm_map_start (const struct vb_map_opts *mo, struct vb_map *map, bool *up)
{
  if (vb_map_start (mo, map) < 0) {
    vb_map_stop (map);
    return -1;
  }
  *up = true;
  return 0;
}

int
vb_pvm_overlay (const char *path, const char *disk, const char *socket,
                uint64_t size)
{
  CLEANUP_FREE char *opts = NULL;

  /* The socket path holds no comma (mkdtemp's name under /var/tmp), which
   * -o would take for the next option. */
  if (asprintf (&opts, "backing_file=nbd+unix:///%s?socket=%s,"
                "backing_fmt=raw", disk, socket) < 0)
    return vb_set_error_errno (ENOMEM, "overlay"), -1;
  if (vb_qemu_img_create (path, "qcow2", opts, size) < 0 ||
      chmod (path, 0600) < 0) {
    vb_prefix_error ("create %s", path);
    return -1;
  }
  return 0;
}
