/* SPDX-License-Identifier: GPL-3.0-or-later */
/* target.h: the repository behind a backup directory.  Everything that
 * reads or writes a backup directory goes through this interface, so a
 * directory, stdout (zip) and later an object store are interchangeable,
 * in the manner of nbdcopy's struct rw.
 *
 * Contract: vb_target_create() opens a file that is invisible under its
 * final name until vb_tfile_commit() (for a directory: NAME.partial, then
 * fsync, rename, fsync of the directory).  Each file is ended by exactly one
 * of vb_tfile_commit() (which discards the file if it fails) or
 * vb_tfile_abort(); both free it.  Errors are sticky: after a failed
 * write every later call on that file fails too with the same error, and
 * commit reports the first one (like redis' rio); a full target says
 * "(target full)".  That and the byte counts are kept here (target.c),
 * once for every backend: backends only do I/O.
 *
 * A file keeps its target: vb_target_close() while files are open ends
 * the target when the last of them is ended, so a log may outlive the run
 * that opened it.
 *
 * Names are relative paths of safe components ("sda.full.data",
 * "checkpoints/virtback.0.xml").  Files and directories are created with
 * the policy given when the target was opened.  A backend that cannot do
 * an operation (zip to stdout only writes) fails it with an error naming
 * the target and the operation.  Read handles (vb_rfile) may be used by
 * any number of threads at once.
 */
#ifndef VB_TARGET_H
#define VB_TARGET_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "common/error.h"

struct vb_target;
struct vb_tfile;
struct vb_rfile;
struct vb_tlock;

/* How new files and directories are made: their modes and group (-1:
 * the creator's).  The CLI builds it from --group. */
struct vb_target_policy {
  mode_t file_mode;
  mode_t dir_mode;
  gid_t group;
};
#define VB_TARGET_POLICY_DEFAULT { 0600, 0700, (gid_t) -1 }

struct vb_target_stat {
  bool exists;
  bool is_dir;
  uint64_t size;
  uint64_t allocated;          /* bytes the storage holds for it */
  time_t mtime;
};

struct vb_target_ops {
  const char *kind;
  struct vb_tfile *(*create) (struct vb_target *t, const char *name);
  /* A file written in place and kept as it is when ended (a log). */
  struct vb_tfile *(*append) (struct vb_target *t, const char *name);
  int (*write) (struct vb_tfile *f, const void *buf, size_t len);
  /* Hand what was written to the storage now, without syncing it; may
   * be NULL (nothing is held back). */
  int (*flush) (struct vb_tfile *f);
  /* Random access, for raw images; may be NULL (not seekable). */
  int (*pwrite) (struct vb_tfile *f, const void *buf, size_t len,
                 uint64_t off);
  int (*truncate) (struct vb_tfile *f, uint64_t size);
  /* Seekable targets (else NULL): keep the first LEN bytes of a new file
   * for a header that is known only at the end (written then with
   * pwrite); sequential writes start after them. */
  int (*reserve) (struct vb_tfile *f, uint64_t len);
  /* Move the bytes from FROM to the end of the file so they begin at TO
   * instead (either way), and end the file after them: for a header that
   * came out longer or shorter than reserved.  It costs a pass over the
   * file; CANCEL (may be NULL) set asynchronously stops it. */
  int (*shift) (struct vb_tfile *f, uint64_t from, uint64_t to,
                volatile sig_atomic_t *cancel);
  int (*commit) (struct vb_tfile *f);
  void (*abort) (struct vb_tfile *f);
  int (*put) (struct vb_target *t, const char *name,
              const void *buf, size_t len);
  /* The read side and the management of names; NULL: not supported. */
  char **(*list) (struct vb_target *t, const char *subdir);
  char *(*read) (struct vb_target *t, const char *name, size_t *len);
  struct vb_rfile *(*open_read) (struct vb_target *t, const char *name);
  int (*stat) (struct vb_target *t, const char *name,
               struct vb_target_stat *st);
  int (*remove) (struct vb_target *t, const char *name);
  int (*rename) (struct vb_target *t, const char *from, const char *to);
  int (*mkdir) (struct vb_target *t, const char *name);
  struct vb_tlock *(*lock) (struct vb_target *t, const char *key,
                            const char *label);
  int (*locked) (struct vb_target *t, const char *key);
  void (*unlock) (struct vb_tlock *l);
  void (*close) (struct vb_target *t);
  /* End the target, reporting failure (a zip's central
   * directory is written here).  May be NULL: nothing to finish. */
  int (*finish) (struct vb_target *t);
};

struct vb_target {
  const struct vb_target_ops *ops;
  char *where;                 /* for messages: the directory, "stdout" */
  struct vb_target_policy policy;
  uint64_t written;            /* bytes written to all its files (atomic:
                                * disks are written by threads at once) */
  int files;                   /* open files, less one once closed (atomic;
                                * target.c's alone) */
};

struct vb_tfile {
  struct vb_target *t;
  char *name;
  uint64_t written;            /* bytes written so far (stream position) */
  int error;                   /* sticky errno, 0 if fine */
  struct vb_error *err;        /* the first error, replayed while sticky */
};

/* A directory target.  DIR need not exist yet: it reads as empty, and is
 * made (with its parents, by POLICY) by the first call that writes.
 * POLICY NULL: the default. */
struct vb_target *vb_target_dir_open (const char *dir,
                                      const struct vb_target_policy *policy);

/* A streaming target writing one uncompressed zip archive to FD (stdout
 * for "-o -"), as virtnbdbackup's zip output: each entry has a local header
 * with the data-descriptor flag and a zip64 extra field, then its bytes,
 * then CRC-32 and sizes in a data descriptor; the central directory is
 * written by vb_target_finish() only: closing an unfinished archive leaves
 * it without one (the run did not complete; POLICY gives the entries'
 * modes).  Not seekable
 * (pwrite/truncate are NULL); one file at a time; nothing can be read,
 * listed, renamed or removed.  An aborted file cannot be unwritten, so it
 * fails the archive: later creates fail and no central directory is
 * written, leaving an invalid zip that no reader takes for a good one.
 * Does not close FD. */
struct vb_target *vb_target_zip_open (int fd,
                                      const struct vb_target_policy *policy);

/* Is NAME a relative path of safe components ("sda.full.data",
 * "checkpoints/virtback.0.xml"; not "", "/x", "a/../b", "a//b")? */
bool vb_target_valid_name (const char *name);

/* ---- writing ---- */
struct vb_tfile *vb_target_create (struct vb_target *t, const char *name);
/* Open NAME for appending (created if missing); commit makes it durable
 * and keeps it, abort closes it as it is. */
struct vb_tfile *vb_target_append (struct vb_target *t, const char *name);
int vb_tfile_write (struct vb_tfile *f, const void *buf, size_t len);
/* Pass the bytes written so far on to the storage (a log line that must
 * survive a killed process); commit still makes them durable. */
int vb_tfile_flush (struct vb_tfile *f);
int vb_tfile_pwrite (struct vb_tfile *f, const void *buf, size_t len,
                     uint64_t off);
int vb_tfile_truncate (struct vb_tfile *f, uint64_t size);
int vb_tfile_reserve (struct vb_tfile *f, uint64_t len);
int vb_tfile_shift (struct vb_tfile *f, uint64_t from, uint64_t to,
                    volatile sig_atomic_t *cancel);
bool vb_tfile_seekable (const struct vb_tfile *f);
int vb_tfile_commit (struct vb_tfile *f);
void vb_tfile_abort (struct vb_tfile *f);
/* Store a small whole file atomically. */
int vb_target_put (struct vb_target *t, const char *name, const void *buf,
                   size_t len);

/* ---- reading and names ---- */
/* Can T be read back (list, read, open_read)?  Not a zip on stdout. */
bool vb_target_readable (const struct vb_target *t);
/* The names in the top directory (SUBDIR NULL) or in SUBDIR, sorted,
 * NULL-terminated (free with vb_strv_free); directories are listed too.
 * A missing SUBDIR is empty.  NULL with an error. */
char **vb_target_list (struct vb_target *t, const char *subdir);
/* A whole small file, NUL-terminated; *LEN (may be NULL) gets its size.
 * NULL with an error; a missing file has errno ENOENT. */
char *vb_target_read (struct vb_target *t, const char *name, size_t *len);
/* Does NAME exist, and its kind and size.  0, or -1 with an error (a
 * missing name is no error: ST->exists is false). */
int vb_target_stat (struct vb_target *t, const char *name,
                    struct vb_target_stat *st);
/* Remove a file or an empty directory; a missing one is no error. */
int vb_target_remove (struct vb_target *t, const char *name);
/* Rename FROM to TO, also into a subdirectory (made if missing). */
int vb_target_rename (struct vb_target *t, const char *from, const char *to);
/* Make directory NAME (and its parents) if missing; NAME NULL: the
 * target itself, which must then be writable. */
int vb_target_mkdir (struct vb_target *t, const char *name);

/* A read handle: random reads of one file. */
struct vb_rfile_ops {
  /* Up to LEN bytes at OFF: the count (short only at the end), -1. */
  ssize_t (*pread) (struct vb_rfile *rf, void *buf, size_t len,
                    uint64_t off);
  /* The next data extent at or after POS: 1 with *DATA and *HOLE (its
   * end), 0 none; may be NULL (all of the file is data). */
  int (*next_data) (struct vb_rfile *rf, uint64_t pos, uint64_t *data,
                    uint64_t *hole);
  void (*close) (struct vb_rfile *rf);
};
struct vb_rfile {
  const struct vb_rfile_ops *ops;
  char *name;                  /* for messages */
  uint64_t size;
};
struct vb_rfile *vb_target_open_read (struct vb_target *t, const char *name);
/* A handle over FD, which stays the caller's (tests, tools); NAME for
 * messages. */
struct vb_rfile *vb_rfile_fd (int fd, const char *name);
/* Thread-safe.  Bytes read (fewer only at the end of the file), or -1
 * with an error naming the file and offset. */
ssize_t vb_rfile_pread (struct vb_rfile *rf, void *buf, size_t len,
                        uint64_t off);
int vb_rfile_next_data (struct vb_rfile *rf, uint64_t pos, uint64_t *data,
                        uint64_t *hole);
void vb_rfile_close (struct vb_rfile *rf);
static inline void
vb_cleanup_rfile (struct vb_rfile **rf)
{
  vb_rfile_close (*rf);
}
#define CLEANUP_RFILE __attribute__((cleanup (vb_cleanup_rfile)))

/* ---- the per-domain lock ----
 * Held for a run on domain KEY (its UUID); LABEL (the domain's name)
 * for the message that says another run holds it.  NULL with that error.
 * For a directory it is a host-local flock file (vb_target_lock_dir),
 * whose file is removed when unlocked; a store may implement a lease. */
struct vb_tlock {
  struct vb_target *t;         /* whose backend unlocks it */
};
struct vb_tlock *vb_target_lock (struct vb_target *t, const char *key,
                                 const char *label);
/* Is the lock of KEY held by a run?  1, 0, -1 error.  Never takes it. */
int vb_target_locked (struct vb_target *t, const char *key);
void vb_target_unlock (struct vb_tlock *l);
/* Where the directory backend's lock files live (default /run/virtback);
 * NULL resets it.  For the unit tests. */
void vb_target_lock_dir (const char *dir);

/* Finish the target; for zip this writes the central directory and is
 * the call that says whether the archive is complete.  0 or -1. */
int vb_target_finish (struct vb_target *t);
void vb_target_close (struct vb_target *t);
static inline void
vb_cleanup_target (struct vb_target **t)
{
  vb_target_close (*t);
}
#define CLEANUP_TARGET __attribute__((cleanup (vb_cleanup_target)))

#endif
