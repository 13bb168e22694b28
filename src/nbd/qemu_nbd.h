/* qemu_nbd.h: a qemu-nbd process serving one image on a unix socket.
 *
 * Contract: vb_qemu_nbd_start() returns once the socket accepts
 * connections (or fails with qemu-nbd's own message).  The process dies
 * with us (PR_SET_PDEATHSIG) and vb_qemu_nbd_stop() always reaps it and
 * removes the socket and log.  The caller owns the directory. */
#ifndef VB_QEMU_NBD_H
#define VB_QEMU_NBD_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

struct vb_qemu_nbd {
  pid_t pid;
  char *sock;
  char *log;
};

struct vb_qemu_nbd_opts {
  const char *image, *format;
  const char *sock;            /* socket path to create */
  const char *export;          /* export name */
  const char *bitmap;          /* expose qemu:dirty-bitmap:BITMAP, or NULL */
  bool readonly;
  const char *const *extra;    /* more qemu-nbd options, or NULL */
  volatile sig_atomic_t *cancel;
};

int vb_qemu_nbd_start (struct vb_qemu_nbd *q, const struct vb_qemu_nbd_opts *o);
void vb_qemu_nbd_stop (struct vb_qemu_nbd *q);

#endif
