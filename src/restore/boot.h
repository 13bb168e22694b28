/* SPDX-License-Identifier: GPL-3.0-or-later */
/* boot.h: a boot-verified backup point (virtback verify --boot).
 *
 * Contract: vb_verify_boot() boots the point as an isolated VM and asks its
 * guest agent whether it came up.  The VM is transient and bound to our
 * libvirt connection (virt.h vb_domain_create_transient), so it is never
 * defined and dies with us even on kill -9.  It is the point's saved
 * definition adjusted: a new name (<name>-verify-<pid>) and UUID; no
 * network interfaces, host devices (hostdev, redirdev, smartcard), shared
 * host directories, graphics, audio or TPM; its serial console goes to a
 * file of ours, UEFI variables (if any) to a fresh copy of ours, and it
 * gets the one agent channel org.qemu.guest_agent.0.  Its disks are qcow2
 * overlays, throwaway, over a read-only map of the point (map/map.h), all
 * in a private directory /var/tmp/virtback-boot.XXXXXX (0770, group
 * libvirt-qemu), so the backup's files are never written and the original
 * VM is never touched.
 *
 * It waits for guest-ping, then reads guest-get-fsinfo, then runs EXEC (if
 * given) as "/bin/sh -c EXEC" through guest-exec and guest-exec-status,
 * all within TIMEOUT seconds of the VM's start.  Then, on every path, it
 * destroys the VM, stops the map and removes the directory.  After kill -9
 * libvirtd destroys the VM and the map dies with us (map.h); the directory
 * is left, and the next run removes it (its pid file names a dead run).
 *
 * Returns 0 when the agent answered (and EXEC exited 0); 1 when the run
 * went through but the verdict is no (the agent never answered, the VM
 * stopped, EXEC failed): the error says which, and R holds what was seen;
 * -1 when the check could not run at all.  Never prints: progress lines go
 * to the callback.
 */
#ifndef VB_RESTORE_BOOT_H
#define VB_RESTORE_BOOT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

struct vb_boot_opts {
  const char *input;           /* backup directory */
  const char *until;           /* point; NULL: newest */
  const char *uri;             /* libvirt; NULL: qemu:///system */
  int timeout;                 /* seconds from the VM's start */
  const char *exec;            /* shell command for the guest, or NULL */
  volatile sig_atomic_t *cancel;
  void (*progress) (void *op, const char *line);
  void *op;
};

struct vb_boot_fs {
  char *name, *mountpoint, *type;
};

struct vb_boot_result {
  char *domain;                /* the transient VM's name */
  char *point;                 /* what was booted: checkpoint or file */
  bool booted;                 /* the VM started */
  bool agent;                  /* the agent answered guest-ping */
  double agent_seconds;        /* from the VM's start */
  struct vb_boot_fs *fs;
  size_t nfs;
  bool exec_ran;               /* EXEC exited (exec_status is its code) */
  int exec_status;
  char *exec_out, *exec_err;   /* its captured output */
};

int vb_verify_boot (const struct vb_boot_opts *o, struct vb_boot_result *r);
/* R as a JSON document; ERROR (the verdict's message) if not NULL. */
struct json_object *vb_boot_result_json (const struct vb_boot_result *r,
                                         const char *input,
                                         const char *error);
void vb_boot_result_clear (struct vb_boot_result *r);

#endif
