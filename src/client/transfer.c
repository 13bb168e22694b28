/* SPDX-License-Identifier: GPL-3.0-or-later */
/* transfer.c: download and upload (client.h).  The main thread plans the
 * work (a list of read and zero pieces), WORKERS threads take pieces in
 * order, each with its own HTTP connection and its own NBD connection to
 * the local qemu-nbd (or the shared output file descriptor), and the main
 * thread reports progress until they are done. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libnbd.h>

#include "client/client.h"
#include "client/http.h"
#include "common/cleanup.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "nbd/nbd.h"
#include "nbd/qemu_nbd.h"

#define ZERO_PIECE (1ull << 30)
#define EXPORT "img"

enum piece_kind { P_DATA, P_ZERO };
struct piece { uint64_t off, len; enum piece_kind kind; };

struct job {
  const char *url;
  const struct vb_client_opts *o;
  bool upload;
  struct piece *p;
  size_t np, cap;
  uint64_t total, done;        /* done: atomic */
  size_t next;                 /* atomic */
  int failed;                  /* atomic */
  unsigned running;            /* atomic */
  pthread_mutex_t lock;
  struct vb_error err;
  int fd;                      /* raw output, or -1 */
  const char *sock;            /* qemu-nbd: qcow2 output or upload source */
  const struct vb_caps *local; /* through its unix_socket, or NULL */
};

static int
add_pieces (struct job *j, uint64_t off, uint64_t len, enum piece_kind kind)
{
  uint64_t step = kind == P_DATA ? VB_CLIENT_CHUNK : ZERO_PIECE;

  for (uint64_t n; len; off += n, len -= n) {
    n = len < step ? len : step;
    if (j->np == j->cap) {
      size_t cap = j->cap ? j->cap * 2 : 256;
      struct piece *v = realloc (j->p, cap * sizeof *v);

      if (!v)
        return vb_set_error_errno (ENOMEM, "pieces"), -1;
      j->p = v, j->cap = cap;
    }
    j->p[j->np++] = (struct piece) { off, n, kind };
  }
  return 0;
}

static void
job_fail (struct job *j)
{
  pthread_mutex_lock (&j->lock);
  if (!j->failed)
    vb_error_save (&j->err);
  __atomic_store_n (&j->failed, 1, __ATOMIC_SEQ_CST);
  pthread_mutex_unlock (&j->lock);
}

static int
nbd_fail (const char *what, uint64_t off)
{
  vb_set_error ("local qemu-nbd: %s at %llu: %s", what,
                (unsigned long long) off, nbd_get_error ());
  return -1;
}

/* LEN bytes at OFF between BUF and the local qemu-nbd, as pipelined
 * requests of NBD_PIECE: qemu-nbd allocates (and the kernel zeroes) a
 * fresh bounce buffer for each request as large as 4 MiB; perf showed
 * its page faults as a third of an upload's time. */
#define NBD_PIECE (256u << 10)
#define NBD_INFLIGHT 16

static int
nbd_io (struct nbd_handle *h, bool write, char *buf, size_t len,
        uint64_t off)
{
  int64_t ck[NBD_INFLIGHT];
  size_t nq = 0, k;
  int r = 0;

  for (uint64_t o = off; len || nq; ) {
    for (; nq < NBD_INFLIGHT && len && r == 0; nq++, len -= k, o += k, buf += k) {
      k = len < NBD_PIECE ? len : NBD_PIECE;
      ck[nq] = write ? nbd_aio_pwrite (h, buf, k, o, NBD_NULL_COMPLETION, 0)
                     : nbd_aio_pread (h, buf, k, o, NBD_NULL_COMPLETION, 0);
      if (ck[nq] < 0)
        r = nbd_fail (write ? "write" : "read", o), len = 0;
    }
    /* Every request is waited for: their buffer is the caller's. */
    for (size_t i = 0; i < nq; i++) {
      int done;

      while ((done = nbd_aio_command_completed (h, (uint64_t) ck[i])) == 0)
        if (nbd_poll (h, -1) < 0)
          return nbd_fail ("poll", off);
      if (done < 0 && r == 0)
        r = nbd_fail (write ? "write" : "read", off);
    }
    nq = 0;
  }
  return r;
}

static int
do_piece (struct job *j, struct vb_http *h, struct vb_nbd *n, char *buf,
          const struct piece *p)
{
  size_t len = (size_t) p->len;

  if (j->upload && p->kind == P_ZERO)
    return vb_http_zero (h, p->off, p->len);
  if (j->upload)
    return nbd_io (n->h, false, buf, len, p->off) < 0
      ? -1 : vb_http_put (h, buf, len, p->off);
  if (p->kind == P_ZERO)
    return nbd_zero (n->h, p->len, p->off, 0) < 0
      ? nbd_fail ("zero", p->off) : 0;
  /* Into a file the bytes go as they arrive, so the network and the disk
   * overlap. */
  if (j->fd >= 0)
    return vb_http_get_fd (h, j->fd, buf, len, p->off);
  if (vb_http_get (h, buf, len, p->off) < 0)
    return -1;
  return nbd_io (n->h, true, buf, len, p->off);
}

/* A raw output's pieces, as nbdcopy treats its output: writeback starts
 * as soon as a piece is in, and a worker's piece KEEP_PIECES older is
 * waited for and dropped from the page cache.  A page cache that grows by
 * the whole image costs allocation, dirty throttling and a long final
 * fsync (measured here: 10-20% off a download's time), and a backup
 * should not evict the host's working set. */
#define KEEP_PIECES 8

struct behind {
  const struct piece *ring[KEEP_PIECES];
  unsigned n;
};

static void
write_behind (int fd, struct behind *b, const struct piece *p)
{
  const struct piece **slot = &b->ring[b->n++ % KEEP_PIECES];

  /* Errors here come back at the fsync of out_commit(). */
  sync_file_range (fd, (off_t) p->off, (off_t) p->len, SYNC_FILE_RANGE_WRITE);
  if (*slot) {
    sync_file_range (fd, (off_t) (*slot)->off, (off_t) (*slot)->len,
                     SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE
                     | SYNC_FILE_RANGE_WAIT_AFTER);
    posix_fadvise (fd, (off_t) (*slot)->off, (off_t) (*slot)->len,
                   POSIX_FADV_DONTNEED);
  }
  *slot = p;
}

static int
work (struct job *j, struct vb_http *h, struct vb_nbd *n, char *buf)
{
  struct behind b = { .n = 0 };

  for (;;) {
    size_t i = __atomic_fetch_add (&j->next, 1, __ATOMIC_SEQ_CST);

    if (__atomic_load_n (&j->failed, __ATOMIC_SEQ_CST) || i >= j->np)
      break;
    if (do_piece (j, h, n, buf, &j->p[i]) < 0)
      return -1;
    if (!j->upload && j->fd >= 0 && j->p[i].kind == P_DATA)
      write_behind (j->fd, &b, &j->p[i]);
    __atomic_add_fetch (&j->done, j->p[i].len, __ATOMIC_SEQ_CST);
  }
  /* Only a flush makes the output's bytes durable. */
  if (n && !j->upload && nbd_flush (n->h, 0) < 0)
    return nbd_fail ("flush", 0);
  return 0;
}

static void *
worker (void *op)
{
  struct job *j = op;
  struct vb_http *h = vb_http_open (j->url, j->o);
  struct vb_nbd *n = NULL;
  char *buf = malloc (VB_CLIENT_CHUNK);

  if (!h || !buf || (j->local && vb_http_use_socket (h, j->local->unix_socket,
                                                     j->local->unix_len) < 0))
    job_fail (j);
  else if (j->sock && !(n = vb_nbd_connect_reads (j->sock, EXPORT, j->o->stop)))
    job_fail (j);
  else if (work (j, h, n, buf) < 0)
    job_fail (j);
  vb_nbd_close (n);
  vb_http_close (h);
  free (buf);
  __atomic_sub_fetch (&j->running, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

static void
report (struct job *j, double t0)
{
  if (j->o->progress)
    j->o->progress (j->o->progress_op, __atomic_load_n (&j->done,
                    __ATOMIC_SEQ_CST), j->total, vb_mono () - t0);
}

/* Run NW workers over the pieces; the time of the whole transfer from T0. */
static int
run (struct job *j, unsigned nw, double t0)
{
  pthread_t tid[VB_CLIENT_MAX_WORKERS];
  unsigned started = 0;
  struct timespec ts = { 0, 50 * 1000 * 1000 };
  double last = 0;

  pthread_mutex_init (&j->lock, NULL);
  for (; started < nw; started++) {
    __atomic_add_fetch (&j->running, 1, __ATOMIC_SEQ_CST);
    if (pthread_create (&tid[started], NULL, worker, j) != 0) {
      __atomic_sub_fetch (&j->running, 1, __ATOMIC_SEQ_CST);
      vb_set_error_errno (EAGAIN, "worker thread");
      job_fail (j);
      break;
    }
  }
  while (__atomic_load_n (&j->running, __ATOMIC_SEQ_CST)) {
    nanosleep (&ts, NULL);
    if (vb_mono () - last >= 0.5)
      report (j, t0), last = vb_mono ();
  }
  for (unsigned i = 0; i < started; i++)
    pthread_join (tid[i], NULL);
  pthread_mutex_destroy (&j->lock);
  if (j->failed) {
    vb_error_restore (&j->err);
    return -1;
  }
  return 0;
}

/* As oVirt's client does: a server on this host that offers a unix socket
 * is read and written through it (no TCP, no TLS); one that does not
 * answer there is used over TCP as before. */
static void
go_local (struct job *j, struct vb_http *h, const struct vb_caps *caps)
{
  struct vb_caps lc;

  if (!caps->local || !caps->unix_len)
    return;
  if (vb_http_use_socket (h, caps->unix_socket, caps->unix_len) == 0
      && vb_http_options (h, &lc) == 0) {
    j->local = caps;
    vb_debug ("%s: through the server's unix socket", j->url);
    return;
  }
  vb_warn ("%s: the server's unix socket does not answer (%s): going on "
           "over TCP", j->url, vb_get_error ());
  vb_http_use_socket (h, NULL, 0);
}

static unsigned
workers_for (const struct vb_client_opts *o, unsigned max, size_t np)
{
  unsigned w = o->workers ? o->workers : 4;

  if (w > VB_CLIENT_MAX_WORKERS)
    w = VB_CLIENT_MAX_WORKERS;
  if (w > max)
    w = max;
  if (w > np)
    w = (unsigned) np;
  return w;
}

/* Progress counts the bytes nothing is done for as done from the start. */
static void
count_skipped (struct job *j)
{
  uint64_t planned = 0;

  for (size_t i = 0; i < j->np; i++)
    planned += j->p[i].len;
  j->done = j->total - planned;
}

/* ---- a private qemu-nbd ---- */

struct local_nbd {
  char dir[64];
  char sock[96];
  struct vb_qemu_nbd q;
};

static int
local_start (struct local_nbd *l, const char *image, const char *format,
             bool readonly, volatile sig_atomic_t *stop)
{
  struct vb_qemu_nbd_opts qo = { .image = image, .format = format,
    .sock = l->sock, .export = EXPORT, .readonly = readonly, .cancel = stop };

  snprintf (l->dir, sizeof l->dir, "/tmp/virtback-client.XXXXXX");
  if (!mkdtemp (l->dir)) {
    l->dir[0] = '\0';
    return vb_set_error_errno (errno, "mkdtemp /tmp"), -1;
  }
  snprintf (l->sock, sizeof l->sock, "%s/nbd.sock", l->dir);
  return vb_qemu_nbd_start (&l->q, &qo);
}

static void
local_stop (struct local_nbd *l)
{
  vb_qemu_nbd_stop (&l->q);
  if (l->dir[0])
    rmdir (l->dir);
  l->dir[0] = '\0';
}

/* ---- download ---- */

struct out {
  char *dir, *tmp;
  const char *path;
  int fd;
  struct local_nbd nbd;
  bool nbd_on;
};

static int
check_download_opts (const char *out, const struct vb_download_opts *o)
{
  const char *f = o->format ? o->format : "qcow2";

  if (strcmp (f, "raw") && strcmp (f, "qcow2")) {
    vb_set_error ("--format %s: use raw or qcow2", f);
    return -1;
  }
  if (o->incremental && (strcmp (f, "qcow2") || !o->backing_file)) {
    vb_set_error ("--incremental writes a qcow2 on top of the previous "
                  "image: give --backing-file PREV (and no --format raw)");
    return -1;
  }
  if (!o->incremental && (o->backing_file || o->backing_format)) {
    vb_set_error ("--backing-file and --backing-format go with --incremental");
    return -1;
  }
  if (access (out, F_OK) == 0 || errno != ENOENT) {
    vb_set_error ("%s already exists: give a new file name", out);
    return -1;
  }
  return 0;
}

/* A temporary name beside OUT, absolute (qemu-img wants that). */
static int
out_names (struct out *w, const char *out)
{
  CLEANUP_FREE char *copy = strdup (out), *base = strdup (out);
  char real[PATH_MAX];

  if (!copy || !base)
    return vb_set_error_errno (ENOMEM, "path"), -1;
  if (!realpath (dirname (copy), real))
    return vb_set_error_errno (errno, "%s: its directory", out), -1;
  if (!(w->dir = strdup (real))
      || asprintf (&w->tmp, "%s/.%s.%ld.part", real, basename (base),
                   (long) getpid ()) < 0) {
    w->tmp = NULL;
    return vb_set_error_errno (ENOMEM, "path"), -1;
  }
  return 0;
}

/* qemu's -o syntax doubles commas inside a value. */
static char *
qemu_opt_value (const char *s)
{
  char *v = malloc (strlen (s) * 2 + 1), *p = v;

  if (!v)
    return NULL;
  for (; *s; s++) {
    *p++ = *s;
    if (*s == ',')
      *p++ = ',';
  }
  *p = '\0';
  return v;
}

static int
out_create (struct out *w, const struct vb_download_opts *o, uint64_t size)
{
  CLEANUP_FREE char *opts = NULL, *bf = NULL, *bfmt = NULL;

  if (o->format && !strcmp (o->format, "raw")) {
    w->fd = open (w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                  0600);
    if (w->fd < 0 || ftruncate (w->fd, (off_t) size) < 0)
      return vb_set_error_errno (errno, "%s", w->tmp), -1;
    return 0;
  }
  if (o->incremental
      && (!(bf = qemu_opt_value (o->backing_file))
          || !(bfmt = qemu_opt_value (o->backing_format ? o->backing_format
                                      : "qcow2"))
          || asprintf (&opts, "backing_file=%s,backing_fmt=%s", bf, bfmt) < 0))
    return vb_set_error_errno (ENOMEM, "options"), -1;
  /* Made here first, so that qemu-img writes a new file of ours (mode
   * 0600), never one a link planted under the temporary name leads to. */
  if ((w->fd = open (w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW
                     | O_CLOEXEC, 0600)) < 0)
    return vb_set_error_errno (errno, "%s", w->tmp), -1;
  close (w->fd);
  w->fd = -1;
  if (vb_qemu_img_create (w->tmp, "qcow2", opts, size) < 0)
    return -1;
  w->nbd_on = true;
  return local_start (&w->nbd, w->tmp, "qcow2", false, o->c.stop);
}

/* Stop the writer, make the bytes durable and give OUT its name. */
static int
out_commit (struct out *w)
{
  int fd = w->fd;

  if (w->nbd_on) {
    local_stop (&w->nbd);
    w->nbd_on = false;
    fd = open (w->tmp, O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0 || fsync (fd) < 0) {
    vb_set_error_errno (errno, "%s", w->tmp);
    return -1;
  }
  if (fd != w->fd)
    close (fd);
  if (renameat2 (AT_FDCWD, w->tmp, AT_FDCWD, w->path, RENAME_NOREPLACE) < 0)
    return vb_set_error_errno (errno, "%s", w->path), -1;
  free (w->tmp);
  w->tmp = NULL;
  return vb_fsync_dir (w->dir);
}

static void
out_cleanup (struct out *w)
{
  if (w->nbd_on)
    local_stop (&w->nbd);
  if (w->fd >= 0)
    close (w->fd);
  if (w->tmp)
    unlink (w->tmp);
  free (w->tmp);
  free (w->dir);
}

static int
plan_download (struct job *j, const struct vb_rext *e, size_t n, bool inc)
{
  for (size_t i = 0; i < n; i++) {
    if (inc && !e[i].dirty)
      continue;
    if (!e[i].zero && add_pieces (j, e[i].off, e[i].len, P_DATA) < 0)
      return -1;
    /* A zero range of an overlay must hide the backing file's bytes. */
    if (e[i].zero && inc && add_pieces (j, e[i].off, e[i].len, P_ZERO) < 0)
      return -1;
  }
  j->total = n ? e[n - 1].off + e[n - 1].len : 0;
  count_skipped (j);
  return 0;
}

static int
download_into (struct job *j, struct out *w, const struct vb_download_opts *o,
               struct vb_http **hp)
{
  struct vb_http *h = *hp;
  CLEANUP_FREE struct vb_rext *e = NULL;
  struct vb_caps caps;
  size_t n = 0;
  double t0 = vb_mono ();

  if (vb_http_options (h, &caps) < 0)
    return -1;
  go_local (j, h, &caps);
  if (!caps.extents) {
    vb_set_error ("%s: the server offers no extents: it is no imageio "
                  "server virtback can read", j->url);
    return -1;
  }
  if (!(e = vb_http_extents (h, o->incremental, &n))
      || plan_download (j, e, n, o->incremental) < 0
      || out_create (w, o, j->total) < 0)
    return -1;
  /* Its backend on the server (an NBD connection) is free for a worker. */
  vb_http_close (h);
  *hp = NULL;
  j->fd = w->fd;
  j->sock = w->nbd_on ? w->nbd.sock : NULL;
  if (run (j, workers_for (&o->c, caps.max_readers, j->np), t0) < 0)
    return -1;
  report (j, t0);
  return out_commit (w);
}

int
vb_download (const char *url, const char *out, const struct vb_download_opts *o)
{
  struct job j = { .url = url, .o = &o->c, .fd = -1 };
  struct out w = { .path = out, .fd = -1 };
  struct vb_http *h;
  int r = -1;

  if (check_download_opts (out, o) < 0 || out_names (&w, out) < 0
      || !(h = vb_http_open (url, &o->c))) {
    out_cleanup (&w);
    return -1;
  }
  r = download_into (&j, &w, o, &h);
  vb_http_close (h);
  if (r < 0) {
    struct vb_error e;

    vb_error_save (&e);
    out_cleanup (&w);
    vb_error_restore (&e);
  }
  else
    out_cleanup (&w);
  free (j.p);
  return r;
}

/* ---- upload ---- */

static int
plan_upload (struct job *j, struct vb_nbd *n)
{
  struct vb_extiter it;
  struct vb_extent e;
  int r;

  vb_extiter_init (&it, n, 0);
  while ((r = vb_extiter_next (&it, &e)) == 1)
    if (add_pieces (j, e.off, e.len, e.type == VB_EXT_DATA ? P_DATA
                    : P_ZERO) < 0) {
      r = -1;
      break;
    }
  vb_extiter_free (&it);
  j->total = n->size;
  count_skipped (j);
  return r;
}

static int
upload_from (struct job *j, struct local_nbd *l, const struct vb_client_opts *o)
{
  struct vb_http *h = NULL;
  struct vb_nbd *n;
  struct vb_caps caps;
  double t0 = vb_mono ();
  int r = -1;

  if (!(n = vb_nbd_connect (l->sock, EXPORT, NULL, o->stop)))
    return -1;
  if (plan_upload (j, n) < 0 || !(h = vb_http_open (j->url, o))
      || vb_http_options (h, &caps) < 0)
    goto out;
  if (!caps.zero || !caps.flush) {
    vb_set_error ("%s: the ticket does not allow writing (no zero and flush "
                  "features): give a ticket with \"ops\": [\"write\"]", j->url);
    goto out;
  }
  go_local (j, h, &caps);
  vb_nbd_close (n);
  n = NULL;
  j->sock = l->sock;
  if (run (j, workers_for (o, caps.max_writers, j->np), t0) == 0
      && vb_http_flush (h) == 0) {
    report (j, t0);
    r = 0;
  }
 out:
  vb_nbd_close (n);
  vb_http_close (h);
  return r;
}

int
vb_upload (const char *file, const char *url, const struct vb_client_opts *o)
{
  CLEANUP_IMAGE_INFO struct vb_image_info *info = NULL;
  struct job j = { .url = url, .o = o, .upload = true, .fd = -1 };
  struct local_nbd l = { 0 };
  char real[PATH_MAX];
  struct vb_error e;
  int r = -1;

  if (!realpath (file, real))
    return vb_set_error_errno (errno, "%s", file), -1;
  if (vb_http_global_init () < 0 || !(info = vb_qemu_img_info (real)))
    return -1;
  if (local_start (&l, real, info->format, true, o->stop) == 0)
    r = upload_from (&j, &l, o);
  vb_error_save (&e);
  local_stop (&l);
  vb_error_restore (&e);
  free (j.p);
  return r;
}
