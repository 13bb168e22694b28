/* internal.h: pieces shared by the files of src/restore only.
 *
 * server.c runs helper programs (qemu-img) and the NBD server (qemu-nbd)
 * that a restore writes through; apply.c streams data files into an NBD
 * writer, with unpack.c decompressing on worker threads; vmxml.c rewrites
 * and defines the domain XML.  Same error convention as everywhere: -1/NULL
 * after vb_set_error(). */
#ifndef VB_RESTORE_INTERNAL_H
#define VB_RESTORE_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backupset/chain.h"
#include "nbd/qemu_nbd.h"
#include "nbd/writer.h"
#include "stream/stream.h"

/* Set by SIGINT/SIGTERM while a restore runs. */
extern volatile sig_atomic_t vb_restore_stop;

/* Run ARGV to completion; its stderr's last line becomes the error. */
int vb_run (char *const argv[]);

/* A qemu-nbd serving one image on a unix socket in a private mkdtemp
 * directory (nbd/qemu_nbd.h).  The server dies with us even if we are
 * killed, and vb_server_stop() always removes the directory. */
struct vb_server {
  struct vb_qemu_nbd q;
  char *dir;
};
/* Start the server and connect a writer to it. */
struct vb_nbd_writer *vb_server_start (struct vb_server *s,
                                       const char *image, const char *format);
void vb_server_stop (struct vb_server *s);

/* How many of the LEN bytes at OFF lie below LIMIT (the smallest size the
 * disk has later in the chain): only those are written. */
static inline uint64_t
vb_below (uint64_t off, uint64_t len, uint64_t limit)
{
  return off >= limit ? 0 : limit - off < len ? limit - off : len;
}

/* Submit the part of lent buffer BUF (LEN bytes for OFF) below LIMIT, or
 * give it back when none of it is. */
static inline int
vb_submit_below (struct vb_nbd_writer *w, void *buf, size_t len,
                 uint64_t off, uint64_t limit)
{
  uint64_t n = vb_below (off, len, limit);

  if (n == 0) {
    vb_nbd_writer_release (w, buf);
    return 0;
  }
  return vb_nbd_writer_submit (w, buf, n, off);
}

/* Bytes written by vb_apply_file (added to). */
struct vb_apply_stats {
  uint64_t data, zero;
};
/* Write one data file's frames: data frames as writes, zero frames as
 * write-zeroes unless SKIP_ZERO (the image is known to read as zeros).
 * A raw image (F->raw) is written by its extents: data as writes, holes
 * and all-zero blocks as zeroes under the same rule.
 * Nothing at or past LIMIT is written: the disk shrank below it later in
 * the chain, so that content no longer exists at the restore point. */
int vb_apply_file (struct vb_nbd_writer *w, const struct vb_chain_file *f,
                   bool skip_zero, uint64_t limit, struct vb_apply_stats *st);

/* Parallel decompression of one compressed data file's pieces into writer
 * W (unpack.c): a few worker threads (one per CPU, at most 4) decompress
 * while the caller's thread, the only one that touches W and the reader,
 * reads pieces in file order and submits what is done, nothing at or past
 * LIMIT.  Memory stays bounded: at most 5 jobs of a little more than one
 * W buffer of compressed input each.  It holds at most 6 of W's buffers at
 * once, and W waits for a free one only while requests are in flight, so W
 * must have more than that plus what the caller holds (server.c: 16).
 * NAME (kept, not copied) goes into errors, with the piece and its file
 * offset.  Not thread-safe itself. */
struct vb_unpack;
struct vb_unpack *vb_unpack_new (struct vb_nbd_writer *w,
                                 enum vb_comp_method method,
                                 const char *name, uint64_t limit);
/* Queue the current data frame FR of R (next() just returned it): 0, -1,
 * or 1 if its pieces do not fit the buffers: the caller reads it itself
 * (vb_reader_read), nothing having been taken.  Writes may still be in
 * flight on return: only vb_unpack_finish() says they all succeeded. */
int vb_unpack_frame (struct vb_unpack *u, struct vb_reader *r,
                     const struct vb_frame *fr);
/* Wait for every queued piece and submit it: 0, or -1 with the first
 * error in file order. */
int vb_unpack_finish (struct vb_unpack *u);
/* After an error the caller found itself (a bad frame header, a piece it
 * unpacked alone): if a piece queued before that point failed, it comes
 * first in the file, so its error replaces the current one. */
void vb_unpack_earlier_error (struct vb_unpack *u);
/* Stop the workers (what is still queued is dropped), give W's buffers
 * back and free.  Always call it, also after errors.  Safe on NULL. */
void vb_unpack_free (struct vb_unpack *u);

/* Check PATH against PATH.chksum (adler32 of every byte, decimal, as
 * virtnbdbackup 2.x writes it).  1 matched, 0 no .chksum, -1 mismatch or
 * error (NAME in the message).  Thread-safe. */
int vb_check_chksum (const char *path, const char *name);

/* 0 if no domain at URI is named NAME, else -1 (with an error telling
 * the user to give another -N). */
int vb_check_domain_name_free (const char *uri, const char *name);

/* Define XML in libvirt at URI; returns the new domain's name. */
char *vb_define_domain (const char *uri, const char *xml);

#endif
