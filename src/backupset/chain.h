/* SPDX-License-Identifier: GPL-3.0-or-later */
/* chain.h: the chain of a backup directory, per disk, in the order a
 * restore applies it.  Owned by the restore side; uses backupset.h and the
 * stream reader's vb_stream_read_meta(); reads the directory only
 * through its target (target/target.h).
 *
 * Contract: vb_chain_scan() reads every finished *.data file's metadata and
 * orders each disk's files by the checkpoint chain: the full (or copy) file
 * first, then each incremental whose parentCheckpoint is the previous
 * file's checkpointName, cross-checked with <domain>.cpt when there is one.
 * Differential files (<disk>.diff.<epoch>.data) hang off the checkpoint
 * they are relative to and never continue the chain.  File times are never
 * used.  Whatever is wrong with the set (unreadable metadata, gaps,
 * duplicates, reorderings, names that disagree with the metadata) is
 * recorded as a problem naming the file (and scoped to it where it can be:
 * see struct vb_chain_problem), and the disk is marked broken;
 * vb_chain_scan() itself fails only when the directory cannot be read.
 * Leftover *.partial files are listed, not treated as backups.
 * A full or copy file that is no stream is a raw image when the side
 * files of its backup say so (vmconfig.<ident>.xml gives the disk the raw
 * format, or <disk>.<ident>.qcow.json exists); a size other than the
 * recorded virtual size is then its problem.
 * Never prints.  Everything is owned by the struct vb_chain.
 */
#ifndef VB_CHAIN_H
#define VB_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backupset/backupset.h"
#include "stream/stream.h"

struct vb_target;

struct vb_chain_file {
  char *name;                  /* "sda.inc.virtnbdbackup.1.data" */
  char *disk;                  /* from the file name */
  enum vb_level level;         /* COPY, FULL, INC or DIFF (from the name) */
  char *ident;                 /* checkpoint (inc), epoch (diff), else NULL */
  bool meta_ok;                /* false: metadata unreadable, meta is empty */
  struct vb_meta meta;
  uint64_t file_size;
  /* A raw image (-t raw, or a raw-format disk copied whole with -r), not
   * a stream: META is made from the side files (virtualSize from
   * qcow.json, else the file size; dataSize the allocated bytes). */
  bool raw;
  char *side_ident;            /* raw: the ident of the side files found */
};

struct vb_chain_disk {
  char *disk;
  bool broken;                 /* some problem concerns this disk */
  /* The linear chain: the full or copy file, then the incrementals. */
  struct vb_chain_file **files;
  size_t nfiles;
  /* Differentials, oldest first (by their epoch); each applies on top of
   * the chain file whose checkpoint is its parentCheckpoint. */
  struct vb_chain_file **diffs;
  size_t ndiffs;
};

/* Where a problem applies, so that damage after a restore point does not
 * block that point: FILE (a data file of c->all) when it concerns one
 * file and the points that need it; AFTER_CHAIN when it concerns only
 * points past the disk's linked chain (a file the .cpt lists is missing);
 * else the whole disk (or, DISK NULL, the whole set). */
struct vb_chain_problem {
  char *disk;                  /* NULL when it concerns the whole set */
  char *text;                  /* "sda.inc.x.data: ..." one line */
  const struct vb_chain_file *file;
  bool after_chain;
};

struct vb_chain {
  struct vb_target *t;         /* borrowed: it must outlive the chain */
  char *dir;                   /* for messages: the target's where */
  char *domain;                /* from <domain>.cpt, NULL if none */
  char **cpt;                  /* its checkpoints; NULL if no .cpt */
  struct vb_chain_file *all;   /* every *.data file, sorted by name */
  size_t nall;
  struct vb_chain_disk *disks; /* sorted by disk name */
  size_t ndisks;
  char **partials;             /* leftover *.partial names (NULL-terminated) */
  struct vb_chain_problem *problems;
  size_t nproblems;
};

/* Scan T.  NULL (with error) only if T cannot be listed. */
struct vb_chain *vb_chain_scan (struct vb_target *t);
void vb_chain_free (struct vb_chain *c);

const struct vb_chain_disk *vb_chain_find_disk (const struct vb_chain *c,
                                                const char *disk);
/* The problems recorded for DISK, or for the whole set, joined by "; ".
 * NULL if none.  Malloc'd. */
char *vb_chain_disk_problems (const struct vb_chain *c, const char *disk);

/* Is F whole, so that a new file may depend on it?  Its metadata must be
 * readable and its frames must end in the stop frame at the end of the
 * file: an uncompressed file's headers are walked without reading the
 * payloads, a compressed one was checked against its trailer when it was
 * opened.  0, or -1 with the error naming F and the byte offset. */
int vb_chain_file_check (const struct vb_chain *c,
                         const struct vb_chain_file *f);

/* The files to apply, in order, to bring DISK to the point UNTIL: a
 * checkpoint name (the chain up to and including the file that ends at it),
 * a data file name, or a differential's epoch.  UNTIL NULL means the newest
 * point: the whole chain plus the newest differential relative to its last
 * checkpoint, if any.  Returns a NULL-terminated array of borrowed
 * pointers (free the array only), or NULL with an error (unknown point, or
 * a problem that concerns the point: for the newest point every problem of
 * the disk does, for an earlier one only those of the files it applies and
 * those of the whole disk). */
struct vb_chain_file **vb_chain_select (const struct vb_chain *c,
                                        const struct vb_chain_disk *d,
                                        const char *until);

/* The problems of disk D (and of the whole set) that did not stop FILES
 * (a vb_chain_select() result) from being selected, joined by "; ": damage
 * after the restore point.  NULL if none.  Malloc'd. */
char *vb_chain_later_problems (const struct vb_chain *c,
                               const struct vb_chain_disk *d,
                               struct vb_chain_file *const *files);

/* An explicit sequence of file names (--sequence): all of one disk, the
 * first a full or copy, each next one's parent the previous checkpoint.
 * Same result convention as vb_chain_select. */
struct vb_chain_file **vb_chain_sequence (const struct vb_chain *c,
                                          char *const *names);

/* The identifier of side files (vmconfig.<ident>.xml,
 * <disk>.<ident>.qcow.json) that belong to F: its checkpoint for full and
 * inc, "copy", or the epoch for diff.  Borrowed or static. */
const char *vb_chain_file_ident (const struct vb_chain_file *f);

#endif
