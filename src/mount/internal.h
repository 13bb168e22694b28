/* SPDX-License-Identifier: GPL-3.0-or-later */
/* internal.h: between the mount's process handling (mount.c) and its
 * libguestfs side (guest.c). */
#ifndef VB_MOUNT_INTERNAL_H
#define VB_MOUNT_INTERNAL_H

#include <guestfs.h>

/* What the background process tells the command, one line each:
 * "F DIR FSTYPE" mounted, "W TEXT" a warning, "E TEXT" the error that
 * ends it, "OK" the mount point serves. */
typedef void (*vb_guest_say) (void *op, char kind, const char *text);

/* Point libguestfs at the cached fixed appliance (see mount.h). */
void vb_guest_env (void);
/* A handle with every NBD export of SOCKET (one per disk, named by its
 * target) as a read-only drive, launched; temporary files in TMPDIR. */
guestfs_h *vb_guest_launch (char **disks, const char *socket,
                            const char *tmpdir);
/* Mount every filesystem read-only under /NAME; 0 if at least one. */
int vb_guest_mount_all (guestfs_h *g, char **disks, vb_guest_say say,
                        void *op);
/* FUSE at MOUNTPOINT (read-only); vb_guest_serve() blocks until it is
 * unmounted. */
int vb_guest_expose (guestfs_h *g, const char *mountpoint);
int vb_guest_serve (guestfs_h *g);
/* The appliance's socket directory, which libguestfs makes in /tmp when
 * run as root whatever TMPDIR says (NULL if unknown): a killed process
 * leaves it, and umount removes it then. */
char *vb_guest_sockdir (guestfs_h *g);
void vb_guest_close (guestfs_h *g);

#endif
