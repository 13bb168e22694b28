/* SPDX-License-Identifier: GPL-3.0-or-later */
/* backupset.h: a backup directory, as virtnbdbackup lays it out.
 *
 * Contract: names every file (data files, .cpt, checkpoints/, vmconfig,
 * qcow.json, logs), reads and writes the chain file <domain>.cpt, keeps the
 * checkpoint XML on disk, holds the per-domain lock (its file removed when
 * the run ends), and reads what the side files record (the domain's UUID,
 * a disk's format and virtual size).  Writes are atomic
 * (fsutil).  Never calls libvirt and never prints.
 * Files are created 0600 and directories 0700 (see vb_bset_modes()).
 */
#ifndef VB_BACKUPSET_H
#define VB_BACKUPSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* File mode for new files and directories (default 0600 / 0700). */
void vb_bset_modes (mode_t file_mode, mode_t dir_mode);
mode_t vb_file_mode (void);
mode_t vb_dir_mode (void);

/* Backup levels as named on the command line and in file names. */
enum vb_level { VB_LEVEL_COPY, VB_LEVEL_FULL, VB_LEVEL_INC, VB_LEVEL_DIFF,
                VB_LEVEL_AUTO };
const char *vb_level_name (enum vb_level l);
int vb_level_parse (const char *s, enum vb_level *l);

/* "sda.full.data", "sda.copy.data", "sda.inc.<cpt>.data",
 * "sda.diff.<epoch>.data".  IDENT is the checkpoint name for inc, the
 * epoch seconds for diff, ignored otherwise.  Malloc'd. */
char *vb_bset_data_name (const char *disk, enum vb_level l, const char *ident);
/* Identifier for the per-backup side files: checkpoint name, "copy", or
 * epoch for diff (as the peer's getIdent). */
char *vb_bset_ident (enum vb_level l, const char *checkpoint);
/* Is NAME safe as a single path component (no '/', not "." or "..")? */
bool vb_bset_safe_component (const char *name);
/* Side file names (malloc'd, NULL on error): "vmconfig.<ident>.xml",
 * "<disk>.<ident>.qcow.json", "<domain>.cpt", and the run's log
 * "backup.<level>.<MMDDYYYYHHMMSS>.log" in local time at WHEN. */
char *vb_bset_vmconfig_name (const char *ident);
char *vb_bset_qcow_json_name (const char *disk, const char *ident);
char *vb_bset_cpt_name (const char *domain);
char *vb_bset_log_name (enum vb_level l, time_t when);
/* "<data file>.chksum": its adler32, as virtnbdbackup 2.x keeps it. */
char *vb_bset_chksum_name (const char *data_file);

/* <dir>/<domain>.cpt: JSON list of checkpoint names, oldest first.
 * A missing file is an empty chain (returns a vector with no entries). */
char **vb_cpt_read (const char *dir, const char *domain);
size_t vb_strv_len (char *const *v);
/* The chain file's exact bytes, as Python's json.dumps(list) writes them
 * (["a", "b"], non-ASCII as \uXXXX).  Malloc'd; NULL on bad UTF-8. */
char *vb_cpt_format (char *const *names);
/* Free a NULL-terminated vector such as vb_cpt_read() returns. */
void vb_strv_free (char **v);

/* Saved checkpoint XML: <cptdir>/<name>.xml. */
int vb_bset_save_checkpoint (const char *cptdir, const char *name,
                            const char *xml);
char *vb_bset_load_checkpoint (const char *cptdir, const char *name);
int vb_bset_remove_checkpoints (const char *cptdir);

/* Does DIR hold any backup data (finished .data files or a .cpt)? */
int vb_bset_has_backup (const char *dir, const char *domain);
/* Remove leftover *.partial files from an earlier failed run, returning
 * how many were removed. */
int vb_bset_remove_partials (const char *dir);
/* 1 if DIR is missing, empty, or holds only what a run that did not
 * complete leaves (its log, *.partial, vmconfig.*.xml, *.qcow.json,
 * *.chksum, an empty checkpoints/), or chains set aside in chain.*
 * directories: a new full may start there.  0 if it
 * holds anything else, -1 on error. */
int vb_bset_only_leftovers (const char *dir);

/* Per-domain lock (flock on a file under /run/virtback, keyed by UUID).
 * Returns an fd to keep open for the run, or -1 with an error saying
 * another backup of the domain is running.  The fd holds the lock on the
 * file that is at the path (a lock taken on a file another run unlinked
 * meanwhile is dropped and taken again). */
int vb_bset_lock_domain (const char *uuid, const char *name);
/* End the run's lock: remove the lock file while still holding it, then
 * close FD.  Safe with FD -1. */
void vb_bset_unlock_domain (int fd, const char *uuid);
/* Is the lock of domain UUID held by a run?  1 yes, 0 no (also when
 * there is no lock file), -1 error.  Never creates the lock file and
 * never holds the lock: a backup starting meanwhile is not disturbed. */
int vb_bset_domain_locked (const char *uuid);
/* Where the lock files live (default /run/virtback); for the unit tests. */
void vb_bset_lock_dir (const char *dir);

/* What the side files record (sidefiles.c); NULL or -1 when nothing is.
 * The UUID in any vmconfig.*.xml of DIR (malloc'd). */
char *vb_bset_vmconfig_uuid (const char *dir);
/* The driver type of disk DISK in vmconfig.<IDENT>.xml (malloc'd). */
char *vb_bset_vmconfig_disk_format (const char *dir, const char *ident,
                                   const char *disk);
/* The "virtual-size" of <DISK>.<IDENT>.qcow.json. */
int64_t vb_bset_qcow_json_vsize (const char *dir, const char *ident,
                                const char *disk);

#endif
