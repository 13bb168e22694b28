/* SPDX-License-Identifier: GPL-3.0-or-later */
/* backupset.h: a backup directory, as virtnbdbackup lays it out.
 *
 * Contract: names every file (data files, .cpt, checkpoints/, vmconfig,
 * qcow.json, logs), reads and writes the chain file <domain>.cpt, keeps the
 * checkpoint XML, and reads what the side files record (the domain's
 * UUID, a disk's format and virtual size).  Every file access goes
 * through a target (target/target.h), which also holds the per-domain
 * lock and the modes new files get; writes are atomic.  Never calls
 * libvirt and never prints.
 */
#ifndef VB_BACKUPSET_H
#define VB_BACKUPSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct vb_target;

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

/* <domain>.cpt in T: JSON list of checkpoint names, oldest first.
 * A missing file is an empty chain (returns a vector with no entries). */
char **vb_cpt_read (struct vb_target *t, const char *domain);
size_t vb_strv_len (char *const *v);
/* Is NAME a checkpoint name "<prefix>.<digits>" of PREFIX? */
bool vb_bset_is_checkpoint_of (const char *name, const char *prefix);
/* Is S one of V's strings (V may be NULL)? */
bool vb_strv_has (char *const *v, const char *s);
/* A new checkpoint's name: "<prefix>.<n>" for the smallest n from N that
 * neither TAKEN nor ALSO (either may be NULL) holds.  NULL with an error. */
char *vb_bset_checkpoint_name (const char *prefix, size_t n,
                               char *const *taken, char *const *also);
/* The chain file's exact bytes, as Python's json.dumps(list) writes them
 * (["a", "b"], non-ASCII as \uXXXX).  Malloc'd; NULL on bad UTF-8. */
char *vb_cpt_format (char *const *names);
/* Free a NULL-terminated vector such as vb_cpt_read() returns. */
void vb_strv_free (char **v);

/* Saved checkpoint XML: <name>.xml in CPT, the -C directory's target. */
int vb_bset_save_checkpoint (struct vb_target *cpt, const char *name,
                             const char *xml);
char *vb_bset_load_checkpoint (struct vb_target *cpt, const char *name);
int vb_bset_remove_checkpoints (struct vb_target *cpt);

/* Does T hold any backup data (finished .data files or a .cpt)? */
int vb_bset_has_backup (struct vb_target *t, const char *domain);
/* Remove leftover *.partial files from an earlier failed run, returning
 * how many were removed. */
int vb_bset_remove_partials (struct vb_target *t);
/* 1 if T is empty, or holds only what a run that did not
 * complete leaves (its log, *.partial, vmconfig.*.xml, *.qcow.json,
 * *.chksum, an empty checkpoints/), or chains set aside in chain.*
 * directories: a new full may start there.  0 if it
 * holds anything else, -1 on error. */
int vb_bset_only_leftovers (struct vb_target *t);

/* What the side files record (sidefiles.c); NULL or -1 when nothing is.
 * The UUID in any vmconfig.*.xml of T (malloc'd). */
char *vb_bset_vmconfig_uuid (struct vb_target *t);
/* The driver type of disk DISK in vmconfig.<IDENT>.xml (malloc'd). */
char *vb_bset_vmconfig_disk_format (struct vb_target *t, const char *ident,
                                    const char *disk);
/* The "virtual-size" of <DISK>.<IDENT>.qcow.json. */
int64_t vb_bset_qcow_json_vsize (struct vb_target *t, const char *ident,
                                 const char *disk);

#endif
