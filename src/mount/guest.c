/* SPDX-License-Identifier: GPL-3.0-or-later */
/* guest.c: the libguestfs side of virtback mount: one appliance reads the
 * map's exports and parses the guest's filesystems, so that the host
 * kernel never does. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "backupset/backupset.h"
#include "mount/internal.h"
#include "mount/mount.h"

/* The library's message, on one line. */
static void
guest_error (guestfs_h *g, const char *what)
{
  const char *e = guestfs_last_error (g);
  CLEANUP_FREE char *m = strdup (e && *e ? e : "failed");

  for (char *p = m; p && *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  vb_set_error ("%s: %s", what, m ? m : "failed");
}

static void
set_default (const char *name, const char *value)
{
  if (!getenv (name))
    setenv (name, value, 0);
}

void
vb_guest_env (void)
{
  const char *dir = getenv ("VIRTBACK_APPLIANCE");
  CLEANUP_FREE char *fixed = NULL, *settings = NULL, *text = NULL;

  /* "direct": the appliance is our own child, not a libvirt domain. */
  set_default ("LIBGUESTFS_BACKEND", "direct");
  if (!dir)
    dir = VB_APPLIANCE_DIR;
  fixed = vb_path_join (dir, "README.fixed");
  if (getenv ("LIBGUESTFS_PATH") || !fixed || access (fixed, R_OK) < 0)
    return;
  setenv ("LIBGUESTFS_PATH", dir, 1);
  settings = vb_path_join (dir, "backend-settings");
  if (settings && (text = vb_read_file (settings, NULL))) {
    text[strcspn (text, "\n")] = '\0';
    if (*text)
      set_default ("LIBGUESTFS_BACKEND_SETTINGS", text);
  }
}

static int
add_disks (guestfs_h *g, char **disks, const char *socket)
{
  CLEANUP_FREE char *server = NULL;

  if (asprintf (&server, "unix:%s", socket) < 0) {
    server = NULL;
    vb_set_error_errno (ENOMEM, "mount");
    return -1;
  }
  for (size_t i = 0; disks[i]; i++) {
    char *servers[] = { server, NULL };
    if (guestfs_add_drive_opts (g, disks[i],
                                GUESTFS_ADD_DRIVE_OPTS_PROTOCOL, "nbd",
                                GUESTFS_ADD_DRIVE_OPTS_SERVER, servers,
                                GUESTFS_ADD_DRIVE_OPTS_FORMAT, "raw",
                                GUESTFS_ADD_DRIVE_OPTS_READONLY, 1, -1) < 0) {
      guest_error (g, disks[i]);
      return -1;
    }
  }
  return 0;
}

guestfs_h *
vb_guest_launch (char **disks, const char *socket, const char *tmpdir)
{
  guestfs_h *g = guestfs_create ();

  if (!g) {
    vb_set_error_errno (errno, "cannot create a libguestfs handle");
    return NULL;
  }
  guestfs_set_error_handler (g, NULL, NULL);
  if (guestfs_set_tmpdir (g, tmpdir) < 0 ||
      guestfs_set_cachedir (g, tmpdir) < 0 ||
      add_disks (g, disks, socket) < 0) {
    guest_error (g, "libguestfs");
    guestfs_close (g);
    return NULL;
  }
  if (guestfs_launch (g) < 0) {
    guest_error (g, "the libguestfs appliance did not start (build it once "
                 "with scripts/guestfs-appliance.sh)");
    guestfs_close (g);
    return NULL;
  }
  return g;
}

/* A directory name for DEV: the backed-up disk's target for a drive
 * ("sda") and its partitions ("sda1"), else the device path without
 * /dev/ and with '/' as '-' ("vg0-root"). */
static char *
fs_name (guestfs_h *g, const char *dev, char **disks)
{
  CLEANUP_FREE char *parent = NULL;
  size_t n = 0;
  int idx, part = 0;
  char *s;

  while (disks[n])
    n++;
  if (guestfs_is_whole_device (g, dev) == 1)
    idx = guestfs_device_index (g, dev);
  else if ((parent = guestfs_part_to_dev (g, dev)) &&
           (part = guestfs_part_to_partnum (g, dev)) > 0)
    idx = guestfs_device_index (g, parent);
  else
    idx = -1;
  if (idx >= 0 && (size_t) idx < n)
    return part > 0 ? (asprintf (&s, "%s%d", disks[idx], part) < 0 ? NULL : s)
                    : strdup (disks[idx]);
  if (!strncmp (dev, "/dev/mapper/", 12))
    dev += 12;
  else if (!strncmp (dev, "/dev/", 5))
    dev += 5;
  if ((s = strdup (dev)))
    for (char *p = s; *p; p++)
      if (*p == '/' || *p == ':' || *p == ' ')
        *p = '-';
  return s;
}

static void
sayf (vb_guest_say say, void *op, char kind, const char *a, const char *b)
{
  CLEANUP_FREE char *s = NULL;

  if (asprintf (&s, "%s %s", a, b) >= 0)
    say (op, kind, s);
  else
    s = NULL;
}

/* 1 mounted, 0 skipped (with a warning), -1 out of memory. */
static int
mount_one (guestfs_h *g, const char *dev, const char *type, char **disks,
           vb_guest_say say, void *op)
{
  CLEANUP_FREE char *name = fs_name (g, dev, disks), *dir = NULL;

  if (!name || asprintf (&dir, "/%s", name) < 0) {
    dir = NULL;
    return -1;
  }
  if (!strcmp (type, "swap") || !strcmp (type, "unknown") || !*type)
    return 0;
  if (guestfs_mkmountpoint (g, dir) == 0 &&
      guestfs_mount_ro (g, dev, dir) == 0) {
    sayf (say, op, 'F', name, type);
    return 1;
  }
  guest_error (g, type);
  guestfs_rmmountpoint (g, dir);
  sayf (say, op, 'W', name, vb_get_error ());
  return 0;
}

int
vb_guest_mount_all (guestfs_h *g, char **disks, vb_guest_say say, void *op)
{
  char **fs = guestfs_list_filesystems (g);
  int mounted = 0, r = 0;

  if (!fs) {
    guest_error (g, "listing the guest's filesystems");
    return -1;
  }
  for (size_t i = 0; fs[i] && fs[i + 1] && r >= 0; i += 2)
    if ((r = mount_one (g, fs[i], fs[i + 1], disks, say, op)) > 0)
      mounted++;
  vb_strv_free (fs);
  if (r < 0) {
    vb_set_error_errno (ENOMEM, "mount");
    return -1;
  }
  if (mounted == 0) {
    vb_set_error ("no filesystem this point's disks hold could be mounted "
                  "(see 'virtback dump' for its disks)");
    return -1;
  }
  return 0;
}

int
vb_guest_expose (guestfs_h *g, const char *mountpoint)
{
  /* "ro" for the host kernel too, beside libguestfs's own refusals. */
  if (guestfs_mount_local (g, mountpoint, GUESTFS_MOUNT_LOCAL_READONLY, 1,
                           GUESTFS_MOUNT_LOCAL_OPTIONS, "ro", -1) < 0) {
    guest_error (g, mountpoint);
    return -1;
  }
  return 0;
}

int
vb_guest_serve (guestfs_h *g)
{
  if (guestfs_mount_local_run (g) < 0) {
    guest_error (g, "the FUSE mount");
    return -1;
  }
  return 0;
}

/* From qemu's "-chardev socket,path=/tmp/libguestfsXXXXXX/guestfsd.sock". */
char *
vb_guest_sockdir (guestfs_h *g)
{
  static const char key[] = "path=/tmp/libguestfs";
  char path[64];
  CLEANUP_FREE char *cmd = NULL;
  size_t len = 0;
  int pid = guestfs_get_pid (g);

  snprintf (path, sizeof path, "/proc/%d/cmdline", pid);
  if (pid <= 0 || !(cmd = vb_read_file (path, &len)))
    return NULL;
  for (size_t i = 0; i < len; i += strlen (cmd + i) + 1) {
    char *p = strstr (cmd + i, key), *end;
    if (p && (end = strchr (p + sizeof key - 1, '/')))
      return strndup (p + 5, end - p - 5);
  }
  return NULL;
}

void
vb_guest_close (guestfs_h *g)
{
  if (!g)
    return;
  guestfs_umount_all (g);
  guestfs_shutdown (g);
  guestfs_close (g);
}
