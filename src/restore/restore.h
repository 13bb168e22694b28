/* SPDX-License-Identifier: GPL-3.0-or-later */
/* restore.h: restore, verify and dump of a backup directory.
 * Owned by the restore side.  Uses backupset/chain.h, stream/stream.h and
 * nbd/writer.h; libvirt only for --define.
 *
 * Contract: nothing here prints.  Results come back in structs the CLI
 * prints; failures are -1 with vb_set_error() naming the file, the byte
 * offset and the disk.
 *
 * A restore needs only the files up to its point: problems of the chain
 * that concern later files only come back as notes of the result, not as
 * a failure (vb_chain_select() decides).  With define, the new domain
 * name is checked in libvirt before anything is written.
 *
 * Restore never leaves a half-written image under a name that could be
 * taken for a good one: images are written as OUTDIR/<disk>.<fmt>.partial,
 * renamed only after every selected disk was written and flushed, and
 * removed on failure (kept with the .partial name under keep_partial).
 * The NBD server (qemu-nbd) is started on a unix socket in a private
 * mkdtemp directory and is always stopped, also on error and when SIGINT
 * or SIGTERM arrives during the restore.  With a URI that names a host,
 * every step on the images (create, write, rename, the VM XML) happens on
 * that host (remote/remote.h), never through a local path.
 */
#ifndef VB_RESTORE_H
#define VB_RESTORE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "backupset/chain.h"

struct vb_restore_opts {
  const char *input;           /* backup directory */
  const char *outdir;          /* where images and the VM XML go */
  char **disks;                /* NULL-terminated; NULL: every disk */
  const char *until;           /* restore point; NULL: newest */
  char **sequence;             /* explicit file list; NULL: by chain */
  const char *format;          /* "qcow2" (default) or "raw" */
  const char *to;              /* existing file/device for one disk */
  bool adjust_config;          /* -c */
  bool define;                 /* -D (implies adjust_config) */
  bool force;                  /* overwrite existing images */
  bool keep_partial;
  const char *name;            /* -N: name of the adjusted VM */
  const char *uri;             /* libvirt URI for -D; one naming a host
                                * (qemu+ssh://) writes the images there */
  /* A remote restore writes through a qemu-nbd started on the host over
   * ssh, serving on TCP at NBD_IP, the first free port of NBD_PORT_LO..HI
   * (0: 10809-10908), with TLS (the host's /etc/pki/qemu; our client
   * certificate in TLS_DIR, NULL: /etc/pki/qemu) when TLS. */
  const char *nbd_ip;
  int nbd_port_lo, nbd_port_hi;
  bool tls;
  const char *tls_dir;
  int timeout;                 /* s without an answer: give up; 0: 60 */
  /* Set asynchronously (by the CLI's signal handlers) to stop the restore
   * through its cleanup; may be NULL. */
  volatile sig_atomic_t *cancel;
};

struct vb_restore_disk {
  char *disk;
  char *image;                 /* final path written */
  char *format;
  uint64_t virtual_size;
  size_t nfiles;               /* data files applied */
  char *point;                 /* checkpoint (or file) restored to */
  uint64_t data_bytes, zero_bytes;
};

struct vb_restore_result {
  struct vb_restore_disk *disks;
  size_t ndisks;
  char *vmconfig;              /* path of the copied VM XML, or NULL */
  char *defined;               /* name of the domain defined with -D */
  char **notes;                /* NULL-terminated: damage found after the
                                * restore point, which it does not need */
};

int vb_restore (const struct vb_restore_opts *o, struct vb_restore_result *r);
void vb_restore_result_clear (struct vb_restore_result *r);

/* Verify: every problem found, one line each ("<file>: offset N: ..."). */
struct vb_verify_report {
  char **problems;             /* NULL-terminated */
  size_t nproblems;
  char **notes;                /* harmless findings (leftover .partial) */
  size_t nnotes;
  bool backup_running;         /* the domain's lock is held by a backup */
  size_t nfiles, ndisks, nchksums;
  uint64_t bytes;              /* file bytes read */
};
/* -1 only when DIR cannot be read at all; problems are in the report. */
int vb_verify (const char *dir, struct vb_verify_report *rep);
void vb_verify_report_clear (struct vb_verify_report *rep);
/* Apart from the files: is every checkpoint of DIR's chain that the domain
 * (of DIR's .cpt, at URI, NULL: qemu:///system) holds still the very one
 * saved in CPTDIR (NULL: DIR/checkpoints), so that the next incremental can
 * go on?  0 yes or nothing to check; 1 no, *MSG says why the next
 * incremental would be refused; 2 could not check (libvirt or the domain
 * unreachable), *MSG says why.  *MSG is malloc'd or NULL. */
int vb_verify_checkpoint (const char *dir, const char *uri,
                          const char *cptdir, char **msg);

/* Dump: the chain as a JSON document, or as text for a terminal. */
struct json_object *vb_dump_json (const struct vb_chain *c);
char *vb_dump_text (const struct vb_chain *c);

/* The VM definition of the restore point, adjusted (used by restore -c). */
struct vb_xml_disk {
  const char *target;          /* "sda" */
  const char *path;            /* restored image or device */
  const char *format;          /* "qcow2" or "raw" */
  bool block;                  /* path is a block device */
};
/* Rewrite domain XML: given disks point at their images, other disks
 * removed, cdrom/floppy media removed, no <uuid>, name NAME.  Malloc'd. */
char *vb_adjust_domain_xml (const char *xml, size_t len,
                            const struct vb_xml_disk *disks, size_t ndisks,
                            const char *name);
/* The <name> of domain XML (malloc'd), NULL on error. */
char *vb_domain_xml_name (const char *xml, size_t len);

#endif
