/* SPDX-License-Identifier: GPL-3.0-or-later */
/* backup.h: one backup run of one domain, from checks to cleanup.
 *
 * Contract: vb_backup_run() validates everything it can before it touches
 * the domain, then creates at most one checkpoint, runs one pull-mode
 * backup job and ALWAYS ends it, removes its socket and scratch directory,
 * and leaves in the output directory only committed files (data files are
 * written as .partial and renamed).  The chain file (.cpt) is updated only
 * after every disk succeeded, so a checkpoint whose backup did not complete
 * never becomes the parent of the next incremental.
 * A remote domain's images are never read through a local path: the disks
 * come over NBD/TCP, qemu-img runs on its host over ssh (remote/remote.h),
 * and a remote run warns once when the data crosses the network
 * unencrypted.  A lost link fails the run within the timeout, naming the
 * host; what could not be cleaned up there (a job the host did not
 * answer for) is ended by the next run's -k.
 * It never prints: notes go through vb_log(), the failure through
 * vb_get_error().  Cancellation: set *opts->cancel from a signal handler.
 */
#ifndef VB_BACKUP_H
#define VB_BACKUP_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "backupset/backupset.h"

struct vb_backup_result;
struct vb_target;
struct vb_target_policy;

struct vb_backup_opts {
  const char *uri;             /* NULL: qemu:///system */
  const char *domain;
  const char *outdir;
  const char *scratchdir;      /* NULL: /var/tmp */
  const char *cptdir;          /* NULL: <outdir>/checkpoints */
  /* Modes and group of what the run creates; NULL: 0600/0700, own group. */
  const struct vb_target_policy *policy;
  const char *prefix;          /* checkpoint prefix, NULL: "virtback" */
  enum vb_level level;
  bool compress;
  int compress_level;
  bool zstd;                   /* --compress-method zstd (ours, parallel) */
  /* Every file restorable by virtnbdrestore 1.9: an inc or diff writes
   * zeroed ranges as data frames.  Implied by prefix "virtnbdbackup". */
  bool peer_compatible;
  bool raw_output;             /* -t raw */
  bool include_raw;            /* -r: back up raw-format disks */
  char **exclude;              /* NULL-terminated, or NULL */
  char **include;
  unsigned workers;            /* 0: one per disk */
  bool print_only;             /* -p */
  bool kill_stale;             /* -k: end a stale job of ours */
  bool force;                  /* --force: -k ends any backup job */
  bool no_freeze;              /* skip the guest agent */
  uint32_t req_size;           /* NBD request size, 0: default */
  unsigned inflight;           /* requests in flight, 0: default */
  unsigned conns;              /* NBD connections per disk, 0: default */
  /* A remote domain (a URI naming a host): its QEMU, or a qemu-nbd
   * started there over ssh for a shut-off one, serves on TCP at NBD_IP,
   * the first free port of NBD_PORT_LO..HI (0: 10809-10908); with TLS
   * QEMU uses the host's x509 set-up and we the client certificate in
   * TLS_DIR (NULL: /etc/pki/qemu). */
  const char *nbd_ip;
  int nbd_port_lo, nbd_port_hi;
  bool tls;
  const char *tls_dir;
  int timeout;                 /* s without an answer: give up; 0: 60 */
  volatile sig_atomic_t *cancel;
  /* Called once the checks passed, before anything is written (the CLI
   * opens the run's log file in the target T here).  May be NULL. */
  int (*started) (void *op, struct vb_target *t, enum vb_level level);
  /* Called about twice a second from the calling thread while disks copy. */
  void (*tick) (void *op, const struct vb_backup_result *r);
  void *op;
};

struct vb_disk_result {
  char *disk;
  char *file;                  /* data file name, NULL if none */
  uint64_t virtual_size;
  uint64_t total;              /* bytes of data to read (estimate) */
  uint64_t done;               /* bytes read so far (updated live) */
  uint64_t written;            /* bytes written to the data file */
  uint64_t data_extents, zero_extents;
  double seconds;
  bool finished;
};

struct vb_backup_result {
  enum vb_level level;         /* what ran (auto resolved) */
  char *checkpoint;            /* created checkpoint, or NULL */
  char *parent;
  struct vb_disk_result *disks;
  size_t ndisks;
  double start;                /* monotonic seconds */
};

int vb_backup_run (const struct vb_backup_opts *o, struct vb_backup_result *r);
void vb_backup_result_free (struct vb_backup_result *r);

#endif
