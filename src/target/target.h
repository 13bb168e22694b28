/* SPDX-License-Identifier: GPL-3.0-or-later */
/* target.h: where backup bytes go.  Writers see only this interface, so a
 * directory, stdout (zip) and later an object store are interchangeable, in
 * the manner of nbdcopy's struct rw.
 *
 * Contract: vb_target_create() opens a file that is invisible under its
 * final name until vb_tfile_commit() (for a directory: NAME.partial, then
 * fsync, rename, fsync of the directory).  Each file is ended by exactly one
 * of vb_tfile_commit() (which discards the file if it fails) or
 * vb_tfile_abort(); both free it.  Errors
 * are sticky: after a failed write every later call fails too, and commit
 * reports the first error (like redis' rio).  A full disk says which target.
 */
#ifndef VB_TARGET_H
#define VB_TARGET_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct vb_target;
struct vb_tfile;

struct vb_target_ops {
  const char *kind;
  struct vb_tfile *(*create) (struct vb_target *t, const char *name);
  int (*write) (struct vb_tfile *f, const void *buf, size_t len);
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
  void (*close) (struct vb_target *t);
  /* End the target, reporting failure (a zip's central
   * directory is written here).  May be NULL: nothing to finish. */
  int (*finish) (struct vb_target *t);
};

struct vb_target {
  const struct vb_target_ops *ops;
  char *where;                 /* for messages: the directory, "stdout" */
};

struct vb_tfile {
  struct vb_target *t;
  char *name;
  uint64_t written;            /* bytes written so far (stream position) */
  int error;                   /* sticky errno, 0 if fine */
};

/* A directory target; DIR must exist.  Files get vb_file_mode(). */
struct vb_target *vb_target_dir_open (const char *dir);

/* A streaming target writing one uncompressed zip archive to FD (stdout
 * for "-o -"), as virtnbdbackup's zip output: each entry has a local header
 * with the data-descriptor flag and a zip64 extra field, then its bytes,
 * then CRC-32 and sizes in a data descriptor; the central directory is
 * written by vb_target_finish() only: closing an unfinished archive leaves
 * it without one (the run did not complete).  Not seekable
 * (pwrite/truncate are NULL); one file at a time.  An aborted file cannot
 * be unwritten, so it fails the archive: later creates fail and no central
 * directory is written, leaving an invalid zip that no reader takes for a
 * good one.  Does not close FD. */
struct vb_target *vb_target_zip_open (int fd);

/* Is NAME a relative path of safe components ("sda.full.data",
 * "checkpoints/virtback.0.xml"; not "", "/x", "a/../b", "a//b")? */
bool vb_target_valid_name (const char *name);

static inline struct vb_tfile *
vb_target_create (struct vb_target *t, const char *name)
{ return t->ops->create (t, name); }
static inline int
vb_tfile_write (struct vb_tfile *f, const void *buf, size_t len)
{ return f->t->ops->write (f, buf, len); }
static inline int
vb_tfile_commit (struct vb_tfile *f)
{ return f->t->ops->commit (f); }
static inline void
vb_tfile_abort (struct vb_tfile *f)
{ if (f) f->t->ops->abort (f); }
/* Store a small whole file atomically. */
static inline int
vb_target_put (struct vb_target *t, const char *name, const void *buf,
               size_t len)
{ return t->ops->put (t, name, buf, len); }
/* Finish the target; for zip this writes the central directory and is
 * the call that says whether the archive is complete.  0 or -1. */
static inline int
vb_target_finish (struct vb_target *t)
{ return t->ops->finish ? t->ops->finish (t) : 0; }
static inline void
vb_target_close (struct vb_target *t)
{ if (t) t->ops->close (t); }

#endif
