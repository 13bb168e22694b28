/* unpack.c: decompress the pieces of compressed data frames on a few
 * worker threads while the NBD writes go on.  See internal.h.
 *
 * The main thread takes pieces whole from the reader in file order and
 * packs consecutive pieces of one frame into a job: their compressed bytes
 * in the job's input buffer, their content in one buffer lent by the NBD
 * writer (so requests stay as large as when one thread decompressed).  A
 * worker decompresses each piece into its place; the main thread takes the
 * jobs back in the order it queued them and submits them.  Only the main
 * thread touches the reader and the writer.  In order also means the first
 * bad piece in the file is the one reported, whichever worker saw it.
 *
 * Memory: NJOBS input buffers of a little more than the writer's buffer
 * size; the output is the writer's own pool.  A job holds one writer
 * buffer from queueing to submission, so at most MAX_JOBS + 1 (a piece too
 * large for one buffer) are held here at once, and the writer, which
 * waits for a free buffer only while requests are in flight, must have
 * more than that. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "restore/internal.h"
#include "stream/stream.h"

#define MAX_WORKERS 4
/* Jobs queued beyond one per worker keep the workers busy while the main
 * thread waits for the writer; each has an input buffer of about one writer
 * buffer, so their number is capped to keep a restore under 64 MiB. */
#define EXTRA_JOBS 2
#define MAX_JOBS 5
#define MAX_JOB_PIECES 64

struct piece {
  size_t in_off, in_len;        /* in the job's input buffer */
  size_t out_off, out_len;      /* in its output buffer */
  size_t index;                 /* in its data frame */
  uint64_t file_off;            /* where it starts in the file */
  uint64_t frame_off;           /* where its data frame's header is */
};

struct job {
  char *in, *out;               /* out: lent by the writer while queued */
  size_t in_len, out_len, max_piece_out;
  uint64_t disk_off;            /* where out goes */
  struct piece pieces[MAX_JOB_PIECES];
  size_t npieces;
  bool done, failed;            /* done: under the lock */
  char msg[1024];
};

struct vb_unpack {
  struct vb_nbd_writer *w;
  enum vb_comp_method method;
  const char *name;
  uint64_t limit;
  size_t bufsize, in_cap;
  struct vb_decomp *dec;        /* main thread: pieces larger than a buffer */
  pthread_mutex_t lock;
  pthread_cond_t work, done;
  pthread_t threads[MAX_WORKERS];
  unsigned nthreads, njobs;
  struct job *jobs;             /* a ring: job number N is jobs[N % njobs] */
  uint64_t queued, taken, finished;
  bool quit, cancel;
  bool reported;                /* a job's error is the current one */
};

/* Where the next piece of the current frame starts. */
struct cursor {
  uint64_t disk, file, frame;
  size_t index;
};

static int
decompress (enum vb_comp_method m, const struct job *j, const struct piece *p)
{
  const char *in = j->in + p->in_off;
  char *out = j->out + p->out_off;

  if (m == VB_COMP_ZSTD)
    return vb_zstd_decompress_frame (in, p->in_len, out, p->out_len);
  return vb_lz4_decompress_frame (in, p->in_len, out, p->out_len);
}

static void
run_job (struct vb_unpack *u, struct job *j)
{
  for (size_t i = 0; i < j->npieces; i++) {
    const struct piece *p = &j->pieces[i];

    if (decompress (u->method, j, p) == -1) {
      snprintf (j->msg, sizeof j->msg, "%s: offset 0x%" PRIx64 ": piece %zu "
                "of data frame at 0x%" PRIx64 ": %s", u->name, p->file_off,
                p->index, p->frame_off, vb_get_error ());
      j->failed = true;
      return;
    }
  }
}

static void *
worker (void *opaque)
{
  struct vb_unpack *u = opaque;

  pthread_mutex_lock (&u->lock);
  for (;;) {
    struct job *j;
    bool skip;

    while (!u->quit && u->taken == u->queued)
      pthread_cond_wait (&u->work, &u->lock);
    if (u->taken == u->queued)
      break;
    j = &u->jobs[u->taken++ % u->njobs];
    skip = u->cancel;
    pthread_mutex_unlock (&u->lock);
    if (!skip)
      run_job (u, j);
    pthread_mutex_lock (&u->lock);
    j->done = true;
    pthread_cond_signal (&u->done);
  }
  pthread_mutex_unlock (&u->lock);
  return NULL;
}

/* Write BUF[LEN] at OFF, or the part of it below the limit. */
static int
submit (struct vb_unpack *u, char *buf, size_t len, uint64_t off)
{
  return vb_submit_below (u->w, buf, len, off, u->limit);
}

/* Take the oldest queued job back (waiting for it) and submit it. */
static int
finish_oldest (struct vb_unpack *u)
{
  struct job *j = &u->jobs[u->finished % u->njobs];

  pthread_mutex_lock (&u->lock);
  while (!j->done)
    pthread_cond_wait (&u->done, &u->lock);
  pthread_mutex_unlock (&u->lock);
  u->finished++;
  if (j->failed) {
    vb_nbd_writer_release (u->w, j->out);
    vb_set_error_str (j->msg);
    u->reported = true;
    return -1;
  }
  return submit (u, j->out, j->out_len, j->disk_off);
}

/* Submit what is already done, without waiting. */
static int
reap (struct vb_unpack *u)
{
  while (u->finished < u->queued) {
    bool done;

    pthread_mutex_lock (&u->lock);
    done = u->jobs[u->finished % u->njobs].done;
    pthread_mutex_unlock (&u->lock);
    if (!done)
      return 0;
    if (finish_oldest (u) == -1)
      return -1;
  }
  return 0;
}

/* The next free job, for content going to disk offset DISK. */
static struct job *
open_job (struct vb_unpack *u, uint64_t disk)
{
  struct job *j;

  while (u->queued - u->finished >= u->njobs)
    if (finish_oldest (u) == -1)
      return NULL;
  j = &u->jobs[u->queued % u->njobs];
  j->out = NULL;
  j->in_len = j->out_len = j->max_piece_out = j->npieces = 0;
  j->disk_off = disk;
  j->done = j->failed = false;
  return j;
}

/* Hand the job to the workers (an empty one simply stays open). */
static int
queue_job (struct vb_unpack *u, struct job *j)
{
  size_t cap;

  if (j->npieces == 0)
    return 0;
  j->out = vb_nbd_writer_buffer (u->w, &cap);
  if (!j->out)
    return -1;
  pthread_mutex_lock (&u->lock);
  u->queued++;
  pthread_cond_signal (&u->work);
  pthread_mutex_unlock (&u->lock);
  return reap (u);
}

/* Can J take a piece of NEXT compressed bytes?  Its content is known only
 * once read: assume it is no larger than the job's largest so far. */
static bool
room (struct vb_unpack *u, const struct job *j, uint64_t next)
{
  return j->npieces < MAX_JOB_PIECES && next <= u->in_cap - j->in_len &&
    j->out_len + j->max_piece_out <= u->bufsize;
}

/* One decoder step of a piece into BUF[CAP], whose content has LEFT bytes
 * still to come: 1 when the piece is complete, 0 when BUF is full, -1. */
static int
big_step (struct vb_unpack *u, const char *in, size_t inlen, size_t *ipos,
          char *buf, size_t cap, uint64_t left, size_t *fill)
{
  size_t end = left < cap ? left : cap;

  for (;;) {
    size_t il = inlen - *ipos, ol = end - *fill;
    int rc = vb_decomp_run (u->dec, in + *ipos, &il, buf + *fill, &ol);

    if (rc == -1)
      return -1;
    *ipos += il;
    *fill += ol;
    if (rc == 1 || (*fill == cap && cap < left))
      return rc;
    if (il == 0 && ol == 0) {
      vb_set_error (*ipos == inlen ? "compressed frame is truncated"
                    : "frame decompresses to more than its header says");
      return -1;
    }
  }
}

/* A piece whose content is larger than one writer buffer (the peer's lz4
 * pieces of up to 32 MiB, when they compress well): decompressed here,
 * streaming into as many buffers as it takes. */
static int
unpack_big (struct vb_unpack *u, const char *in, const struct piece *p,
            uint64_t disk)
{
  size_t ipos = 0;
  uint64_t done = 0;
  int rc = 0;

  if (!u->dec && !(u->dec = vb_decomp_new (u->method)))
    return -1;
  vb_decomp_reset (u->dec);
  while (rc == 0) {
    size_t cap, fill = 0;
    char *buf = vb_nbd_writer_buffer (u->w, &cap);

    if (!buf)
      return -1;
    rc = big_step (u, in, p->in_len, &ipos, buf, cap, p->out_len - done, &fill);
    if (rc == -1)
      vb_nbd_writer_release (u->w, buf);
    else if (submit (u, buf, fill, disk + done) == -1)
      return -1;
    done += fill;
  }
  if (rc == 1 && (ipos != p->in_len || done != p->out_len)) {
    vb_set_error ("frame decompresses to %" PRIu64 " bytes, %zu expected, "
                  "from %zu of %zu bytes", done, p->out_len, ipos, p->in_len);
    rc = -1;
  }
  if (rc == -1)
    vb_prefix_error ("%s: offset 0x%" PRIx64 ": piece %zu of data frame at 0x%"
                     PRIx64, u->name, p->file_off, p->index, p->frame_off);
  return rc == -1 ? -1 : 0;
}

/* P was read to the end of *JP's input: add it, or move it to a job of its
 * own, or unpack it here if no buffer holds its content. */
static int
place_piece (struct vb_unpack *u, struct job **jp, struct piece *p,
             uint64_t disk)
{
  struct job *j = *jp;
  const char *in = j->in + j->in_len;

  if (p->out_len > u->bufsize || j->out_len + p->out_len > u->bufsize) {
    /* The piece's bytes stay behind the job's input: no worker reads them,
     * and the slot is reused only by open_job. */
    if (queue_job (u, j) == -1)
      return -1;
    *jp = NULL;
    if (p->out_len > u->bufsize)
      return unpack_big (u, in, p, disk);
    if (!(j = *jp = open_job (u, disk)))
      return -1;
    memcpy (j->in, in, p->in_len);
  }
  p->in_off = j->in_len;
  p->out_off = j->out_len;
  j->pieces[j->npieces++] = *p;
  j->in_len += p->in_len;
  j->out_len += p->out_len;
  if (p->out_len > j->max_piece_out)
    j->max_piece_out = p->out_len;
  return 0;
}

/* Take the next piece (NEXT compressed bytes) from the reader. */
static int
take_piece (struct vb_unpack *u, struct vb_reader *r, struct job **jp,
            struct cursor *c, uint64_t next)
{
  struct piece p = { .index = c->index, .file_off = c->file,
                     .frame_off = c->frame };
  uint64_t content;
  ssize_t n;

  if (*jp && !room (u, *jp, next)) {
    if (queue_job (u, *jp) == -1)
      return -1;
    *jp = NULL;
  }
  if (!*jp && !(*jp = open_job (u, c->disk)))
    return -1;
  n = vb_reader_piece (r, (*jp)->in + (*jp)->in_len,
                       u->in_cap - (*jp)->in_len, &content);
  if (n <= 0)
    return -1;                  /* 0: cannot be, NEXT said there is one */
  p.in_len = n;
  p.out_len = content;
  if (place_piece (u, jp, &p, c->disk) == -1)
    return -1;
  c->disk += content;
  c->file += n;
  c->index++;
  return 0;
}

int
vb_unpack_frame (struct vb_unpack *u, struct vb_reader *r,
                 const struct vb_frame *fr)
{
  struct cursor c = { fr->start, fr->file_offset + VB_FRAME_LEN,
                      fr->file_offset, 0 };
  struct job *j = NULL;
  uint64_t next, max;

  if (vb_reader_piece_sizes (r, &next, &max) == -1)
    return -1;
  if (max > u->in_cap)
    return 1;
  for (;;) {
    if (__atomic_load_n (&vb_restore_stop, __ATOMIC_RELAXED)) {
      vb_set_error ("interrupted");
      return -1;
    }
    if (vb_reader_piece_sizes (r, &next, &max) == -1)
      return -1;
    if (next == 0)
      break;
    if (take_piece (u, r, &j, &c, next) == -1)
      return -1;
  }
  if (j && queue_job (u, j) == -1)
    return -1;
  /* Checks that the content sizes added up and the payload's CR LF. */
  return vb_reader_piece (r, NULL, 0, &next) == 0 ? 0 : -1;
}

int
vb_unpack_finish (struct vb_unpack *u)
{
  while (u->finished < u->queued)
    if (finish_oldest (u) == -1)
      return -1;
  return 0;
}

void
vb_unpack_earlier_error (struct vb_unpack *u)
{
  /* Jobs are taken back in order: the one that failed was the earliest. */
  if (u->reported)
    return;
  for (uint64_t k = u->finished; k < u->queued; k++) {
    struct job *j = &u->jobs[k % u->njobs];
    bool failed;

    pthread_mutex_lock (&u->lock);
    while (!j->done)
      pthread_cond_wait (&u->done, &u->lock);
    failed = j->failed;
    pthread_mutex_unlock (&u->lock);
    if (failed) {
      vb_set_error_str (j->msg);
      return;
    }
  }
}

static int
alloc_jobs (struct vb_unpack *u)
{
  char *b = vb_nbd_writer_buffer (u->w, &u->bufsize);

  if (!b)
    return -1;
  vb_nbd_writer_release (u->w, b);
  u->njobs = u->nthreads + EXTRA_JOBS;
  if (u->njobs > MAX_JOBS)
    u->njobs = MAX_JOBS;
  /* Room for a buffer's worth of content that did not compress. */
  u->in_cap = u->bufsize + u->bufsize / 32;
  u->jobs = calloc (u->njobs, sizeof *u->jobs);
  if (!u->jobs)
    goto oom;
  for (unsigned i = 0; i < u->njobs; i++)
    if (!(u->jobs[i].in = malloc (u->in_cap)))
      goto oom;
  return 0;
 oom:
  vb_set_error_errno (errno, "%s: decompression buffers", u->name);
  return -1;
}

static int
start_workers (struct vb_unpack *u)
{
  long ncpu = sysconf (_SC_NPROCESSORS_ONLN);
  unsigned want = ncpu < 1 ? 1 : ncpu > MAX_WORKERS ? MAX_WORKERS : ncpu;
  int err = 0;

  while (u->nthreads < want) {
    err = pthread_create (&u->threads[u->nthreads], NULL, worker, u);
    if (err)
      break;
    u->nthreads++;
  }
  /* Fewer workers than wanted is only slower. */
  if (u->nthreads == 0) {
    vb_set_error_errno (err, "%s: start a decompression thread", u->name);
    return -1;
  }
  return 0;
}

struct vb_unpack *
vb_unpack_new (struct vb_nbd_writer *w, enum vb_comp_method method,
               const char *name, uint64_t limit)
{
  struct vb_unpack *u = calloc (1, sizeof *u);

  if (!u) {
    vb_set_error_errno (errno, "calloc");
    return NULL;
  }
  u->w = w;
  u->method = method;
  u->name = name;
  u->limit = limit;
  pthread_mutex_init (&u->lock, NULL);
  pthread_cond_init (&u->work, NULL);
  pthread_cond_init (&u->done, NULL);
  if (start_workers (u) == -1 || alloc_jobs (u) == -1) {
    vb_unpack_free (u);
    return NULL;
  }
  return u;
}

void
vb_unpack_free (struct vb_unpack *u)
{
  if (!u)
    return;
  pthread_mutex_lock (&u->lock);
  u->quit = u->cancel = true;
  pthread_cond_broadcast (&u->work);
  pthread_mutex_unlock (&u->lock);
  /* Workers skip what is still queued; once joined, nothing writes into
   * the writer's buffers any more and they can go back. */
  for (unsigned i = 0; i < u->nthreads; i++)
    pthread_join (u->threads[i], NULL);
  for (; u->finished < u->queued; u->finished++)
    vb_nbd_writer_release (u->w, u->jobs[u->finished % u->njobs].out);
  for (unsigned i = 0; u->jobs && i < u->njobs; i++)
    free (u->jobs[i].in);
  free (u->jobs);
  vb_decomp_free (u->dec);
  pthread_cond_destroy (&u->done);
  pthread_cond_destroy (&u->work);
  pthread_mutex_destroy (&u->lock);
  free (u);
}
