/* SPDX-License-Identifier: GPL-3.0-or-later */
/* writer.h: an asynchronous NBD writer (libnbd aio_pwrite / aio_zero).
 * Owned by the restore side.
 *
 * Contract: the caller fills buffers lent by the writer and submits them;
 * several requests are in flight at once, and memory is bounded by the
 * buffer pool (nbufs * bufsize, chosen at open) whatever the disk size.
 * A request that fails makes every later call fail with the first error,
 * which names the offset.  vb_nbd_writer_finish() waits for everything in
 * flight and flushes; only after it returned 0 is the data durable.
 * Never prints.  Single-threaded: one writer per thread.
 */
#ifndef VB_NBD_WRITER_H
#define VB_NBD_WRITER_H

#include <stddef.h>
#include <stdint.h>
#include <signal.h>

struct vb_nbd_writer;

/* Connect to the NBD server listening on unix socket SOCKET.  NBUFS
 * buffers of BUFSIZE bytes make the pool (at most 64 MiB in total).
 * STOP, if not NULL, is polled while waiting: when it becomes non-zero the
 * current call fails ("interrupted"). */
struct vb_nbd_writer *vb_nbd_writer_open (const char *socket,
                                          unsigned nbufs, size_t bufsize,
                                          volatile sig_atomic_t *stop);
/* Size of the export in bytes. */
uint64_t vb_nbd_writer_size (struct vb_nbd_writer *w);

/* Lend a free buffer (waiting for a request to complete if needed).
 * *CAP receives its size.  NULL on error. */
void *vb_nbd_writer_buffer (struct vb_nbd_writer *w, size_t *cap);
/* Write LEN bytes of BUF (a lent buffer, LEN <= cap) at OFFSET.  The buffer
 * returns to the pool when the request completes. */
int vb_nbd_writer_submit (struct vb_nbd_writer *w, void *buf, size_t len,
                          uint64_t offset);
/* Give a lent buffer back unused. */
void vb_nbd_writer_release (struct vb_nbd_writer *w, void *buf);
/* Make [OFFSET, OFFSET+LEN) read as zeros (NBD write-zeroes, split into
 * requests the server accepts). */
int vb_nbd_writer_zero (struct vb_nbd_writer *w, uint64_t offset,
                        uint64_t len);
/* Wait for every request in flight.  NBD servers may complete overlapping
 * requests in any order, so callers drain between writes that may overlap
 * (one data file and the next). */
int vb_nbd_writer_drain (struct vb_nbd_writer *w);
/* Wait for all requests, then flush.  0 or -1. */
int vb_nbd_writer_finish (struct vb_nbd_writer *w);
/* Name TARGET (copied: the image the server writes) in request errors. */
void vb_nbd_writer_set_target (struct vb_nbd_writer *w, const char *target);
/* The errno of the first failed request (or flush), 0 if none. */
int vb_nbd_writer_errno (const struct vb_nbd_writer *w);
/* Disconnect (after finish) and free.  Safe on NULL. */
void vb_nbd_writer_close (struct vb_nbd_writer *w);

#endif
