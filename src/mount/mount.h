/* SPDX-License-Identifier: GPL-3.0-or-later */
/* mount.h: the files of a backup point, read-only, under a mount point.
 *
 * Contract: vb_mount_start() serves the point with the map (map/map.h) on
 * a unix socket in a private run directory, boots ONE libguestfs
 * appliance with every export as a read-only drive, mounts each guest
 * filesystem it finds (partitions, LVM LVs, whole-disk filesystems)
 * read-only inside the appliance under a directory named after it
 * ("sda1", "vg0-root", "sda"), and exposes that tree at MOUNTPOINT with
 * FUSE (guestfs_mount_local).  Guest filesystems are untrusted: the host
 * kernel never parses them, the appliance does; the host kernel sees a
 * FUSE file system only.  It returns once MOUNTPOINT is usable; a
 * background process of its own session keeps the appliance and the map
 * alive, and holds a lock in the run directory for as long as it lives.  Each mounted filesystem goes to MOUNTED, each one
 * that could not be mounted to WARN.
 *
 * vb_mount_stop() ends it all: the FUSE mount, the appliance, the map and
 * the run directory, and returns only once that background process and
 * what it ran (nbdkit, the appliance's qemu: every process that names the
 * run directory) are gone, killing what lingers.  SIGTERM to that process
 * ends it the same way (before the mount serves: the start fails).
 *
 * Run directories: VB_MOUNT_RUNDIR/XXXXXX (mode 0700), holding the mount
 * point's path, the pid, the lock, the map's socket, libguestfs's
 * temporary files, the name of the appliance's socket directory (which
 * libguestfs makes in /tmp as root: removed with the run directory if
 * the process was killed) and the background process's log.
 *
 * The appliance: if LIBGUESTFS_PATH is unset and VIRTBACK_APPLIANCE (or
 * /var/cache/virtback/appliance) holds a fixed appliance (made by
 * scripts/guestfs-appliance.sh), it is used, with its backend-settings;
 * the backend is "direct" unless LIBGUESTFS_BACKEND says otherwise.
 */
#ifndef VB_MOUNT_H
#define VB_MOUNT_H

#include <signal.h>

#define VB_MOUNT_RUNDIR "/run/virtback/mount"
#define VB_APPLIANCE_DIR "/var/cache/virtback/appliance"

struct vb_mount_opts {
  const char *input;           /* backup directory */
  const char *until;           /* point; NULL: newest */
  const char *disk;            /* one disk; NULL: all */
  const char *mountpoint;      /* an empty directory */
};

struct vb_mount_report {
  void (*mounted) (void *op, const char *dir, const char *fstype);
  void (*warn) (void *op, const char *text);
  void *op;
};

/* CANCEL (may be NULL), set by a signal, abandons a start under way. */
int vb_mount_start (const struct vb_mount_opts *o,
                    const struct vb_mount_report *r,
                    volatile sig_atomic_t *cancel);
int vb_mount_stop (const char *mountpoint);

#endif
