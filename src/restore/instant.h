/* SPDX-License-Identifier: GPL-3.0-or-later */
/* instant.h: instant recovery, a backup point run as a VM at once
 * (virtback restore --instant).
 *
 * Contract: vb_instant() serves the point with a detached map (map/map.h)
 * on a socket in a private directory /var/tmp/virtback-instant.XXXXXX
 * (group libvirt-qemu, 0770), creates per disk a qcow2 overlay
 * OUTDIR/<disk>.qcow2 backed by that disk's NBD export, defines and starts
 * the point's VM adjusted as restore -c -D adjusts it (name -N or
 * restore_<name>, no UUID, disks on the overlays), and then moves the data
 * into the overlays with a block pull per disk.  It returns 0 once the VM
 * no longer depends on the backup: no block job, no backing in the live
 * XML nor in any overlay's header, the map stopped, nothing of it left.
 *
 * Why a block pull, not a block copy: it fills only what the overlay does
 * not hold, so the guest's writes simply stay; it needs no second image
 * nor a pivot by us; and it runs inside QEMU, so it completes even if we
 * are killed.
 *
 * Never losing the guest's writes: they go to the overlay, a local file,
 * from the first second.  What the VM needs from us is its backing: the
 * map runs detached, in its own session, so that kill -9 of virtback (or
 * of its terminal) leaves the VM running and reading.  OUTDIR/instant.json
 * records the run (domain, map, socket, disks) for RESUME, which adopts
 * the map, or starts it again if it is gone (after a host reboot, say),
 * starts the VM if it is shut off, pulls what is left and cleans up.
 * CANCEL returns with the VM, the map and the block pulls running (the
 * pulls complete in QEMU by themselves); the error says how to resume,
 * which then waits for them.
 *
 * Before the VM runs, any failure undoes everything (domain, map, overlays,
 * directory, instant.json).  After, the error says that the VM keeps
 * running on its overlays and how to finish with --resume.  Never prints:
 * progress lines go to the callback.
 */
#ifndef VB_RESTORE_INSTANT_H
#define VB_RESTORE_INSTANT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

struct vb_instant_opts {
  const char *input;           /* backup directory */
  const char *outdir;          /* overlays and instant.json go here */
  const char *until;           /* point; NULL: newest */
  const char *disk;            /* one disk; NULL: every disk */
  const char *name;            /* -N; NULL: restore_<name> */
  const char *uri;             /* libvirt; NULL: qemu:///system */
  bool resume;
  uint64_t bandwidth;          /* bytes/s per disk pull, 0: unlimited */
  volatile sig_atomic_t *cancel;
  void (*progress) (void *op, const char *line);
  void *op;
};

struct vb_instant_result {
  char *name;                  /* the domain, running */
  char **overlays;             /* its images, NULL-terminated */
};

int vb_instant (const struct vb_instant_opts *o, struct vb_instant_result *r);
void vb_instant_result_clear (struct vb_instant_result *r);

#endif
