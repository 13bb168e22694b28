/* SPDX-License-Identifier: GPL-3.0-or-later */
/* internal.h: pieces shared by the files of src/restore only.
 *
 * server.c runs the NBD server (qemu-nbd) that a restore writes through;
 * point.c writes a restore point, read through the view (view/view.h),
 * into an NBD writer; vmxml.c rewrites the domain XML (virt/virt.h defines
 * it); pointvm.c holds what instant.c and boot.c share.  Same error convention as everywhere: -1/NULL
 * after vb_set_error(). */
#ifndef VB_RESTORE_INTERNAL_H
#define VB_RESTORE_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <libxml/tree.h>

#include "backupset/chain.h"
#include "map/map.h"
#include "nbd/qemu_nbd.h"
#include "nbd/writer.h"
#include "remote/remote.h"
#include "stream/stream.h"

/* A qemu-nbd serving one image on a unix socket in a private mkdtemp
 * directory (nbd/qemu_nbd.h).  The server dies with us even if we are
 * killed, and vb_server_stop() always removes the directory. */
struct vb_server {
  struct vb_qemu_nbd q;
  char *dir;
  struct vb_rnbd rq;           /* or on a remote host */
  char *addr;                  /* its nbd[s]:// address */
};
/* Start the server and connect a writer to it; CANCEL (may be NULL) set
 * asynchronously makes waits give up. */
struct vb_nbd_writer *vb_server_start (struct vb_server *s,
                                       const char *image, const char *format,
                                       volatile sig_atomic_t *cancel);
/* The same on R's host: qemu-nbd there serving IMAGE on TCP (RO says
 * where), the writer connected with TLS_DIR's certificate when RO has a
 * tls_dir.  vb_server_stop stops it. */
struct vb_nbd_writer *vb_server_start_remote (struct vb_server *s,
                                              const struct vb_remote *r,
                                              const struct vb_rnbd_opts *ro,
                                              const char *tls_dir);
void vb_server_stop (struct vb_server *s);

/* Bytes written by vb_write_point (added to). */
struct vb_apply_stats {
  uint64_t data, zero;
};
/* Write the point V into W (point.c): each byte of it once, data read on
 * a few threads through the view, zero and hole ranges zeroed unless FRESH
 * (the image reads as zeros already), all-zero chunks likewise.  Writes
 * may be in flight on return: vb_nbd_writer_finish says they succeeded.
 * CANCEL (may be NULL) set asynchronously stops it ("interrupted"). */
struct vb_view;
int vb_write_point (struct vb_nbd_writer *w, struct vb_view *v, bool fresh,
                    volatile sig_atomic_t *cancel, struct vb_apply_stats *st);

/* Check PATH against PATH.chksum (adler32 of every byte, decimal, as
 * virtnbdbackup 2.x writes it).  1 matched, 0 no .chksum, -1 mismatch or
 * error (NAME in the message).  Thread-safe. */
struct vb_target;
int vb_check_chksum (struct vb_target *t, const char *name);

/* 0 if no domain at URI is named NAME, else -1 (with an error telling
 * the user to give another -N). */
int vb_check_domain_name_free (const char *uri, const char *name);

/* XML elements (vmxml.c): PARENT's first child element NAME (NULL if none
 * or PARENT is NULL); every child element NAME removed, with the
 * indentation before it. */
xmlNodePtr vb_xml_child (xmlNodePtr parent, const char *name);
void vb_xml_remove_children (xmlNodePtr parent, const char *name);

/* A VM of a backup point (pointvm.c): its saved definition, its disks as
 * qcow2 overlays over a map (map/map.h) serving the point on a unix
 * socket in a directory QEMU's group may enter.  instant.c and boot.c
 * each own their run: these only do the steps both take alike. */
/* FMT formatted, to PROGRESS (may be NULL) with OP. */
void vb_pvm_say (void (*progress) (void *op, const char *line), void *op,
                 const char *fmt, ...) __attribute__((format (printf, 3, 4)));
/* CANCEL (may be NULL) set, read without a lock as a signal handler sets
 * it. */
bool vb_pvm_cancelled (volatile sig_atomic_t *cancel);
/* The last file of disk I of C up to UNTIL (NULL: the newest point): the
 * point's own file, whose size and ident are the point's.  NULL on error. */
const struct vb_chain_file *vb_pvm_last_file (struct vb_chain *c, size_t i,
                                              const char *until);
/* The point's saved definition, vmconfig.<ident>.xml of F (of its parent
 * for a diff), read from T; *NAME (the caller frees) is the file looked
 * for, for the caller's message.  NULL, with no error set, if there is
 * none: each caller says what that means for it. */
char *vb_pvm_read_xml (struct vb_target *t, const struct vb_chain_file *f,
                       char **name);
/* DIR made reachable by QEMU (group libvirt-qemu, mode 0770), nobody
 * else. */
int vb_pvm_share_dir (const char *dir);
/* vb_map_start; on failure vb_map_stop (nothing stays), else *UP set. */
int vb_pvm_map_start (const struct vb_map_opts *mo, struct vb_map *map,
                      bool *up);
/* A qcow2 overlay PATH (mode 0600) of SIZE bytes over export DISK of the
 * map at SOCKET, which holds no comma.  On failure PATH may exist: the
 * caller removes it. */
int vb_pvm_overlay (const char *path, const char *disk, const char *socket,
                    uint64_t size);

#endif
