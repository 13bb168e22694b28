/* SPDX-License-Identifier: GPL-3.0-or-later */
/* fsutil.h: durable file system helpers shared by every unit that writes.
 *
 * Contract: nothing half-written is ever visible under its final name.
 * vb_write_file_atomic() writes NAME.tmp, fsyncs it, renames it over NAME
 * and fsyncs the directory.  All return 0 or -1 with vb_set_error(). */
#ifndef VB_FSUTIL_H
#define VB_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

int vb_fsync_dir (const char *dir);
/* Make a file written by another process (qemu-img, say) durable. */
int vb_fsync_file (const char *path);
/* Give an open file group GID (-1: leave the creator's); 0 or -1. */
int vb_fs_chgrp_fd (int fd, gid_t gid, const char *what);
/* Write LEN bytes to DIR/NAME atomically with MODE (and group GID). */
int vb_write_file_atomic (const char *dir, const char *name,
                          const void *data, size_t len, mode_t mode);
int vb_write_file_atomic_as (const char *dir, const char *name,
                             const void *data, size_t len, mode_t mode,
                             gid_t gid);
/* Read a whole (small) file; *LEN receives its size; NUL-terminated. */
char *vb_read_file (const char *path, size_t *len);
/* mkdir -p with MODE for directories it creates. */
int vb_mkdir_p (const char *path, mode_t mode);
int vb_mkdir_p_as (const char *path, mode_t mode, gid_t gid);
/* The write loops below retry short writes and EINTR; on failure the
 * error carries the errno (vb_get_errno) and says which call failed, and
 * the caller prefixes the file. */
/* Write all of BUF to FD. */
int vb_write_all (int fd, const void *buf, size_t len);
/* writev until everything is out; IOV is consumed. */
struct iovec;
int vb_writev_all (int fd, struct iovec *iov, int n);
/* pwrite() all of BUF at OFF. */
int vb_pwrite_all (int fd, const void *buf, size_t len, uint64_t off);
/* Does S end in SUFFIX (S may be SUFFIX itself)? */
bool vb_has_suffix (const char *s, const char *suffix);
/* 1 if PATH is a directory holding no entries other than . and .., 0 if it
 * holds entries, -1 on error (missing directory counts as empty: 1). */
int vb_dir_is_empty (const char *path);
/* Join two path parts into a new string. */
char *vb_path_join (const char *dir, const char *name);
/* The last component of PATH (after its last '/'; PATH itself when it has
 * none), pointing into PATH. */
const char *vb_path_base (const char *path);

#endif
