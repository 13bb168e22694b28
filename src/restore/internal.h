/* internal.h: pieces shared by the files of src/restore only.
 *
 * server.c runs helper programs (qemu-img) and the NBD server (qemu-nbd)
 * that a restore writes through; apply.c streams data files into an NBD
 * writer; vmxml.c rewrites and defines the domain XML.  Same error
 * convention as everywhere: -1/NULL after vb_set_error(). */
#ifndef VB_RESTORE_INTERNAL_H
#define VB_RESTORE_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backupset/chain.h"
#include "nbd/qemu_nbd.h"
#include "nbd/writer.h"

/* Set by SIGINT/SIGTERM while a restore runs. */
extern volatile sig_atomic_t vb_restore_stop;

/* Run ARGV to completion; its stderr's last line becomes the error. */
int vb_run (char *const argv[]);

/* A qemu-nbd serving one image on a unix socket in a private mkdtemp
 * directory (nbd/qemu_nbd.h).  The server dies with us even if we are
 * killed, and vb_server_stop() always removes the directory. */
struct vb_server {
  struct vb_qemu_nbd q;
  char *dir;
};
/* Start the server and connect a writer to it. */
struct vb_nbd_writer *vb_server_start (struct vb_server *s,
                                       const char *image, const char *format);
void vb_server_stop (struct vb_server *s);

/* Bytes written by vb_apply_file (added to). */
struct vb_apply_stats {
  uint64_t data, zero;
};
/* Write one data file's frames: data frames as writes, zero frames as
 * write-zeroes unless SKIP_ZERO (the image is known to read as zeros).
 * Nothing at or past LIMIT is written: the disk shrank below it later in
 * the chain, so that content no longer exists at the restore point. */
int vb_apply_file (struct vb_nbd_writer *w, const struct vb_chain_file *f,
                   bool skip_zero, uint64_t limit, struct vb_apply_stats *st);

/* Check PATH against PATH.chksum (adler32 of every byte, decimal, as
 * virtnbdbackup 2.x writes it).  1 matched, 0 no .chksum, -1 mismatch or
 * error (NAME in the message).  Thread-safe. */
int vb_check_chksum (const char *path, const char *name);

/* Define XML in libvirt at URI; returns the new domain's name. */
char *vb_define_domain (const char *uri, const char *xml);

#endif
