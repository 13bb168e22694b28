/* SPDX-License-Identifier: GPL-3.0-or-later */
/* client.h: virtback's ovirt-imageio clients, download and upload, on
 * libcurl, following the flow of oVirt's own client.
 *
 * Contract:
 * - A transfer first asks OPTIONS of the image URL (features, max_readers,
 *   max_writers), then works over WORKERS connections of its own (capped
 *   by what the server advertises), each a keep-alive libcurl handle.
 *   A server on this host whose OPTIONS advertises "unix_socket" is then
 *   used through that socket (plain HTTP), as oVirt's client does; TLS is
 *   verified on the first, TCP connection all the same.
 * - vb_download(): GET /extents (context=zero, or context=dirty with
 *   incremental), then a ranged GET of each data extent (dirty data only
 *   for incremental), in pieces of VB_CLIENT_CHUNK.  OUT is raw (written
 *   with pwrite a megabyte at a time, with write-behind, zero extents
 *   left as holes) or qcow2 (written through a
 *   private qemu-nbd with libnbd; incremental: a qcow2 whose backing file
 *   is the previous image, dirty zero ranges written as zeros).  OUT is
 *   built under a temporary name in its own directory, fsynced and renamed
 *   only once every byte is there: on any failure nothing is left behind
 *   (no partial file, no qemu-nbd, no socket).  An existing OUT is refused.
 * - vb_upload(): FILE (raw or qcow2, its backing chain followed) is read
 *   through a private read-only qemu-nbd; data extents go up with PUT
 *   (Content-Range, flush=n), zero extents with PATCH zero, then one PATCH
 *   flush.
 * - TLS is verified against CAFILE or the system store unless INSECURE.
 * - Errors: -1 with vb_set_error(): one line naming the URL and the HTTP
 *   status and the server's message, or curl's reason for a dropped
 *   connection.  Never prints: progress goes to the PROGRESS callback,
 *   called from the calling thread about twice a second and once at the
 *   end with done == total.
 * - STOP, if set asynchronously, makes the transfer fail ("interrupted")
 *   and clean up.
 */
#ifndef VB_CLIENT_H
#define VB_CLIENT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VB_CLIENT_CHUNK (4u << 20)
#define VB_CLIENT_MAX_WORKERS 8

typedef void (*vb_progress_cb) (void *op, uint64_t done, uint64_t total,
                                double secs);

struct vb_client_opts {
  const char *cafile;          /* NULL: the system's CA store */
  bool insecure;               /* do not verify the server's certificate */
  unsigned workers;            /* 0: 4 */
  vb_progress_cb progress;     /* may be NULL */
  void *progress_op;
  volatile sig_atomic_t *stop;
};

struct vb_download_opts {
  struct vb_client_opts c;
  const char *format;          /* "raw" or "qcow2"; NULL: qcow2 */
  bool incremental;            /* dirty extents only, into a qcow2 overlay */
  const char *backing_file;    /* with incremental: the previous image */
  const char *backing_format;  /* NULL: qcow2 */
};

int vb_download (const char *url, const char *out,
                 const struct vb_download_opts *o);
int vb_upload (const char *file, const char *url,
               const struct vb_client_opts *o);

/* "[ 100.00% ] 6.00 GiB, 15.52 seconds, 395.75 MiB/s" (seed 002's line)
 * into BUF. */
void vb_progress_format (char *buf, size_t len, uint64_t done,
                         uint64_t total, double secs);

#endif
