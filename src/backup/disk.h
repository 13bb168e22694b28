/* SPDX-License-Identifier: GPL-3.0-or-later */
/* disk.h (private to backup/): back up one disk from an NBD export into one
 * data file of a target, in the stream format (or a raw image). */
#ifndef VB_BACKUP_DISK_H
#define VB_BACKUP_DISK_H

#include "backup/backup.h"
#include "nbd/nbd.h"
#include "stream/stream.h"
#include "target/target.h"

struct vb_disk_spec {
  const char *socket;
  const char *disk;            /* target dev = export name */
  const char *format;          /* source format for the metadata */
  const char *dirty_ctx;       /* NULL for full/copy */
  const char *file;            /* data file name inside the target */
  struct vb_meta meta;         /* names filled by the caller; sizes here */
  bool raw_output;
  bool compress;
  bool zstd;                   /* our zstd form, else the peer's lz4 */
  bool peer_compatible;        /* inc/diff: zeroed ranges as data frames */
  int level;
  unsigned workers;            /* zstd compression threads */
  uint32_t req_size;
  unsigned inflight;
  unsigned conns;              /* NBD connections for reads, 0: default */
  volatile sig_atomic_t *cancel;
};

/* Copy the disk; on success the data file and its .chksum are committed.
 * R->done is updated while copying (read by the progress ticker). */
int vb_backup_disk (struct vb_target *t, const struct vb_disk_spec *s,
                    struct vb_disk_result *r);
/* Only measure: fill R->total, R->virtual_size and extent counts. */
int vb_estimate_disk (const struct vb_disk_spec *s, struct vb_disk_result *r);

#endif
