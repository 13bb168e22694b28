/* SPDX-License-Identifier: GPL-3.0-or-later */
/* plugin.c: nbdkit-virtback-plugin, one backup point of a backup
 * directory served over NBD, one export per disk, read through the view.
 *
 *   nbdkit virtback dir=DIR [until=POINT] [disk=DISK] [cache=BYTES]
 *
 * Contract: every view is opened once, before the server listens
 * (get_ready), so a damaged or missing file fails the start with its name,
 * and a damaged file past the point only leaves a debug note.  Reads are
 * the view's (PARALLEL: any number at once); a read that meets corrupt
 * data fails with EIO and the log names the file and offset, never
 * returning wrong bytes.  Extents say data, or hole and zero (zero frames
 * and ranges no file covers alike), so clients skip them.  The plugin never writes: nbdkit's cow filter (virtback map
 * --writable) takes writes into an overlay of its own.
 */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "backupset/chain.h"
#include "target/target.h"
#include "common/error.h"
#include "common/parse.h"
#include "view/view.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

struct export {
  char *disk;
  struct vb_view *view;
};

static const char *dir, *until, *only;
static struct vb_target *repo;   /* DIR, open while the plugin is loaded */
static uint64_t cache_bytes;
static struct export *exports;
static size_t nexports;

static int
vbp_config (const char *key, const char *value)
{
  if (!strcmp (key, "dir"))
    dir = value;
  else if (!strcmp (key, "until"))
    until = value;
  else if (!strcmp (key, "disk"))
    only = value;
  else if (!strcmp (key, "cache")) {
    if (vb_parse_size (value, UINT64_MAX, &cache_bytes) < 0) {
      nbdkit_error ("cache: %s", vb_get_error ());
      return -1;
    }
  }
  else {
    nbdkit_error ("unknown parameter '%s'", key);
    return -1;
  }
  return 0;
}

static int
vbp_config_complete (void)
{
  if (!dir) {
    nbdkit_error ("the dir=DIR parameter is required");
    return -1;
  }
  return 0;
}

static int
add_export (const struct vb_chain *c, const struct vb_chain_disk *d)
{
  struct vb_chain_file **files = vb_chain_select (c, d, until);
  struct export *e;

  if (!files)
    return -1;
  if (!(e = realloc (exports, (nexports + 1) * sizeof *e))) {
    free (files);
    vb_set_error_errno (ENOMEM, "exports");
    return -1;
  }
  exports = e;
  e = &exports[nexports];
  e->view = vb_view_open_files (repo, files, cache_bytes);
  e->disk = strdup (d->disk);
  free (files);
  if (!e->view || !e->disk) {
    vb_view_close (e->view);
    free (e->disk);
    return -1;
  }
  nexports++;
  return 0;
}

/* Open every view before the server listens: a start that fails says why
 * at once, not at the first client. */
static int
vbp_get_ready (void)
{
  struct vb_chain *c;
  int r = 0;

  if (!(repo = vb_target_dir_open (dir, NULL)) || !(c = vb_chain_scan (repo))) {
    nbdkit_error ("%s", vb_get_error ());
    return -1;
  }
  for (size_t i = 0; i < c->ndisks && r == 0; i++)
    if (!only || !strcmp (only, c->disks[i].disk))
      r = add_export (c, &c->disks[i]);
  if (r == 0 && !nexports)
    vb_set_error ("%s holds no disk %s", dir, only ? only : "at all"), r = -1;
  if (r < 0)
    nbdkit_error ("%s", vb_get_error ());
  vb_chain_free (c);
  return r;
}

static void
vbp_unload (void)
{
  for (size_t i = 0; i < nexports; i++) {
    vb_view_close (exports[i].view);
    free (exports[i].disk);
  }
  free (exports);
}

static int
vbp_list_exports (int readonly, int is_tls, struct nbdkit_exports *list)
{
  for (size_t i = 0; i < nexports; i++)
    if (nbdkit_add_export (list, exports[i].disk, NULL) < 0)
      return -1;
  return 0;
}

static const char *
vbp_default_export (int readonly, int is_tls)
{
  return nexports ? exports[0].disk : "";
}

static void *
vbp_open (int readonly)
{
  const char *name = nbdkit_export_name ();

  for (size_t i = 0; i < nexports; i++)
    if (!name || !*name || !strcmp (name, exports[i].disk))
      return &exports[i];
  nbdkit_error ("no disk '%s' in this backup point", name);
  return NULL;
}

static int64_t
vbp_get_size (void *h)
{
  return vb_view_size (((struct export *) h)->view);
}

static int
vbp_can_multi_conn (void *h)
{
  return 1;                    /* read-only: every connection sees the same */
}

static int
vbp_can_cache (void *h)
{
  return NBDKIT_CACHE_EMULATE;
}

static int
vbp_block_size (void *h, uint32_t *minimum, uint32_t *preferred,
                uint32_t *maximum)
{
  *minimum = 1;
  *preferred = 64 * 1024;
  *maximum = 32 * 1024 * 1024;
  return 0;
}

static int
vbp_pread (void *h, void *buf, uint32_t count, uint64_t offset,
           uint32_t flags)
{
  struct export *e = h;

  if (vb_view_pread (e->view, buf, count, offset) < 0) {
    nbdkit_error ("%s: %s", e->disk, vb_get_error ());
    nbdkit_set_error (EIO);
    return -1;
  }
  return 0;
}

static int
vbp_extents (void *h, uint32_t count, uint64_t offset, uint32_t flags,
             struct nbdkit_extents *out)
{
  struct export *e = h;
  struct vb_view_extent x[64];
  size_t n = vb_view_extents (e->view, offset, count, x, 64);

  /* A zero frame stored no data: served, it is a hole like a range no
   * file covers, so that copies of the disk stay sparse there. */
  for (size_t i = 0; i < n; i++) {
    uint32_t type = x[i].kind == VB_VIEW_DATA ? 0
      : NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
    if (nbdkit_add_extent (out, x[i].off, x[i].len, type) < 0)
      return -1;
    if (flags & NBDKIT_FLAG_REQ_ONE)
      break;
  }
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name = "virtback",
  .longname = "virtback backup point",
  .version = VB_VERSION,
  .description = "Serve one backup point of a virtback or virtnbdbackup "
                 "backup directory, one export per disk",
  .config = vbp_config,
  .config_help = "dir=DIR (required) until=POINT disk=DISK cache=BYTES",
  .config_complete = vbp_config_complete,
  .get_ready = vbp_get_ready,
  .unload = vbp_unload,
  .list_exports = vbp_list_exports,
  .default_export = vbp_default_export,
  .open = vbp_open,
  .get_size = vbp_get_size,
  .can_multi_conn = vbp_can_multi_conn,
  .can_cache = vbp_can_cache,
  .block_size = vbp_block_size,
  .pread = vbp_pread,
  .extents = vbp_extents,
  .magic_config_key = "dir",
};

NBDKIT_REGISTER_PLUGIN (plugin)
