/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Unit tests for the NBD data path against a real server: nbdkit's memory
 * plugin (sparse, so base:allocation reports holes where nothing was
 * written).  Checks extent windows and merging, the ordered copy with
 * several connections, and the transform pool with and without chains. */
#include <assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libnbd.h>

#include "common/error.h"
#include "common/proc.h"
#include "common/test.h"
#include "nbd/nbd.h"

#define DISK (64u << 20)
static char sock[64];

/* What was written: [off, len) ranges of byte (off >> 12) & 0xff. */
static const struct { uint64_t off, len; } written[] = {
  { 0, 65536 },                        /* at the start */
  { 1 << 20, 5 << 20 },                /* longer than a request, a chain */
  { 20 << 20, 4096 },                  /* tiny, far apart */
  { 40 << 20, 4096 },
  { DISK - 65536, 65536 },             /* at the end */
};
#define NW (sizeof written / sizeof written[0])

static unsigned char
pattern (uint64_t off)
{
  return (unsigned char) ((off >> 12) * 7 + 1);
}

/* What the disk holds at OFF: the pattern where written, else zero (the
 * server may report an allocated page around a small write). */
static unsigned char
expect (uint64_t off)
{
  for (size_t i = 0; i < NW; i++)
    if (off >= written[i].off && off < written[i].off + written[i].len)
      return pattern (off);
  return 0;
}

static pid_t
start_server (void)
{
  char *argv[] = { "nbdkit", "-f", "-U", sock, "memory", "64M", NULL };
  pid_t pid = vb_proc_spawn (argv, NULL);
  struct nbd_handle *h = NULL;

  for (int i = 0; i < 200 && pid > 0; i++) {
    h = nbd_create ();
    if (nbd_connect_unix (h, sock) == 0)
      break;
    nbd_close (h);
    h = NULL;
    usleep (20000);
  }
  assert (h);
  for (size_t i = 0; i < NW; i++) {
    unsigned char *b = malloc (written[i].len);
    for (uint64_t k = 0; k < written[i].len; k++)
      b[k] = pattern (written[i].off + k);
    assert (nbd_pwrite (h, b, written[i].len, written[i].off, 0) == 0);
    free (b);
  }
  nbd_shutdown (h, 0);
  nbd_close (h);
  return pid;
}

static void
test_extents (void)
{
  struct vb_nbd *n = vb_nbd_connect (sock, "", NULL, NULL);
  struct vb_extent_totals t;
  struct vb_extiter it;
  struct vb_extent e;
  uint64_t pos = 0, data = 0;
  int r;

  CHECK (n != NULL);
  if (!n)
    return;
  CHECK (n->size == DISK);
  /* Tiny windows: merging across window edges must still give contiguous,
   * alternating extents that cover the disk. */
  vb_extiter_init (&it, n, 1 << 20);
  enum vb_ext_type last = VB_EXT_CLEAN;
  while ((r = vb_extiter_next (&it, &e)) == 1) {
    CHECK (e.off == pos && e.len > 0 && e.type != last);
    pos += e.len;
    last = e.type;
    if (e.type == VB_EXT_DATA)
      data += e.len;
  }
  CHECK (r == 0 && pos == DISK);
  vb_extiter_free (&it);
  CHECK (vb_nbd_totals (n, &t, NULL) == 0);
  CHECK (t.data_bytes == data && t.data_bytes + t.zero_bytes == DISK);
  CHECK (t.data_extents == NW);
  for (size_t i = 0; i < NW; i++)
    data -= written[i].len;
  CHECK (data < 32 * 4096 * NW);   /* allocation granularity at most */
  vb_nbd_close (n);
}

/* The sink checks bytes and order. */
struct rec {
  uint64_t ext_off, ext_len, pos, bytes, zero;
  unsigned data_ext, zero_ext;
  bool in_ext, bad;
  uint64_t chain_seen;
};

static int
r_begin (void *op, uint64_t off, uint64_t len)
{
  struct rec *r = op;
  if (r->in_ext || off < r->pos)
    r->bad = true;
  r->in_ext = true;
  r->ext_off = r->pos = off;
  r->ext_len = len;
  r->data_ext++;
  return 0;
}

static int
r_data (void *op, const void *buf, size_t len, size_t orig)
{
  struct rec *r = op;
  const unsigned char *b = buf;
  /* identity transform or none: bytes are the disk's, in order */
  if (len != orig)
    r->bad = true;
  for (size_t i = 0; i < len; i++)
    if (b[i] != expect (r->pos + i))
      r->bad = true;
  r->pos += orig;
  r->bytes += orig;
  return 0;
}

static int
r_end (void *op)
{
  struct rec *r = op;
  if (!r->in_ext || r->pos != r->ext_off + r->ext_len)
    r->bad = true;
  r->in_ext = false;
  return 0;
}

static int
r_zero (void *op, uint64_t off, uint64_t len)
{
  struct rec *r = op;
  if (r->in_ext || off < r->pos)
    r->bad = true;
  r->pos = off + len;
  r->zero += len;
  r->zero_ext++;
  return 0;
}

/* Identity transform; with chains, check each worker sees a chain's
 * pieces in order from first to last. */
static uint64_t chain_next[4];
static ssize_t
r_transform (void *op, unsigned w, const struct vb_piece *p, void *out,
             size_t cap)
{
  struct rec *r = op;
  if (p->len > cap || w >= 4)
    return -1;
  if (p->chain_first)
    chain_next[w] = 0;
  chain_next[w] += p->len;
  if (p->chain_last && chain_next[w] != p->chain_len)
    r->bad = true;
  __atomic_add_fetch (&r->chain_seen, p->chain_last, __ATOMIC_RELAXED);
  memcpy (out, p->in, p->len);
  return p->len;
}

static void
copy_case (unsigned conns, bool xform, uint64_t chain, size_t map_queue)
{
  /* With the map running ahead the copy only reads, and needs no
   * metadata on its connections. */
  struct vb_nbd *n = map_queue ? vb_nbd_connect_reads (sock, "", NULL)
                               : vb_nbd_connect (sock, "", NULL, NULL);
  struct vb_nbd *meta = vb_nbd_connect (sock, "", NULL, NULL);
  struct vb_mapper *m = NULL;
  struct rec r = { 0 };
  struct vb_sink k = { .begin_data = r_begin, .data = r_data,
                       .end_data = r_end, .zero = r_zero, .op = &r };
  struct vb_copy_opts o = { .req_size = 1 << 20, .max_inflight = 6 };
  struct vb_copy_stats st;
  struct vb_extent_totals t;

  CHECK (n && vb_nbd_add_connections (n, sock, conns) == 0);
  if (xform) {
    k.transform = r_transform;
    k.transform_cap = 1 << 20;
    k.workers = 2;
    k.chain_size = chain;
  }
  CHECK (meta && vb_nbd_totals (meta, &t, NULL) == 0);
  vb_nbd_close (meta);
  if (map_queue) {            /* the map runs ahead on its own connection */
    m = vb_mapper_start (vb_nbd_connect (sock, "", NULL, NULL), map_queue, NULL,
                         NULL);
    CHECK (m != NULL);
    o.mapper = m;
  }
  CHECK (vb_nbd_copy (n, &k, &o, &st) == 0);
  if (m) {
    struct vb_extent_totals mt;
    CHECK (vb_mapper_totals (m, &mt) == 0);
    CHECK (mt.data_bytes == t.data_bytes && mt.zero_bytes == t.zero_bytes);
    CHECK (mt.data_extents == t.data_extents);
    vb_mapper_free (m);
  }
  CHECK (!r.bad && !r.in_ext);
  CHECK (r.bytes == t.data_bytes && st.bytes_read == t.data_bytes);
  CHECK (r.bytes + r.zero == DISK && r.pos == DISK);
  CHECK (r.data_ext == NW && st.data_extents == NW);
  if (chain)                  /* the ~5 MiB extent is three 2 MiB chains */
    CHECK (r.chain_seen == NW + 2);
  CHECK (r.zero_ext == st.zero_extents && r.zero_ext >= NW - 1);
  vb_nbd_close (n);
}

/* Take every queued extent from POS on: they must tile the rest of the
 * disk exactly once.  Adds their data bytes to *DATA. */
static void
drain (struct vb_mapper *m, uint64_t pos, uint64_t *data)
{
  struct vb_extent e;
  int r;

  while ((r = vb_mapper_next (m, &e)) != 0 && r != -1) {
    if (r == 2) {
      usleep (1000);
      continue;
    }
    CHECK (e.off == pos && e.len > 0);
    pos = e.off + e.len;
    if (e.type == VB_EXT_DATA)
      *data += e.len;
  }
  CHECK (r == 0 && pos == DISK);
}

/* The map parks when its queue is full and tells how far it got; asked
 * for the total then, it counts the rest and goes on queueing from where
 * it stopped, losing and repeating nothing. */
static void
test_mapper (void)
{
  struct vb_nbd *n = vb_nbd_connect (sock, "", NULL, NULL);
  struct vb_mapper *m = vb_mapper_start (vb_nbd_connect (sock, "", NULL, NULL), 2,
                                         NULL, NULL);
  struct vb_map_state ms;
  struct vb_extent_totals t, want;
  uint64_t counted = 0, data = 0, pos;

  REQUIRE (n && m && vb_nbd_totals (n, &want, NULL) == 0);
  vb_nbd_close (n);
  vb_mapper_settle (m, &ms);
  CHECK (!ms.done && ms.size == DISK && ms.mapped > 0 && ms.mapped < DISK);
  CHECK (vb_mapper_totals (m, &t) == -1);     /* not finished */
  /* An extent taken makes room: settled again, the map has filled it. */
  {
    struct vb_extent e;
    uint64_t before = ms.mapped;

    CHECK (vb_mapper_next (m, &e) == 1 && e.off == 0);
    pos = e.len;
    data = e.type == VB_EXT_DATA ? e.len : 0;
    vb_mapper_settle (m, &ms);
    CHECK (!ms.done && ms.mapped > before);
  }
  CHECK (vb_mapper_count (m, &counted) == 0 && counted == want.data_bytes);
  drain (m, pos, &data);
  CHECK (data == want.data_bytes);
  vb_mapper_settle (m, &ms);
  CHECK (ms.done && ms.mapped == DISK);
  CHECK (vb_mapper_totals (m, &t) == 0 && t.data_bytes == want.data_bytes);
  CHECK (t.data_extents == want.data_extents);
  CHECK (vb_mapper_count (m, &counted) == 0 && counted == want.data_bytes);
  vb_mapper_free (m);
  struct vb_map_state half = { .mapped = 100, .size = 1000,
                               .data_bytes = 30 };
  CHECK (vb_map_estimate (&half) == 300);
  half.done = true;
  CHECK (vb_map_estimate (&half) == 30);
  half = (struct vb_map_state) { .mapped = 0, .size = 1000 };
  CHECK (vb_map_estimate (&half) == 0);
  /* Freed while parked: the thread must stop, not hang. */
  m = vb_mapper_start (vb_nbd_connect (sock, "", NULL, NULL), 1, NULL, NULL);
  CHECK (m != NULL);
  vb_mapper_free (m);
}

/* A server that accepts (the listen backlog does) but never greets: the
 * connect gives up in time instead of waiting forever. */
static void
test_connect_timeout (void)
{
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct vb_nbd *n;

  snprintf (a.sun_path, sizeof a.sun_path, "/tmp/test-nbd-mute.%d.sock",
            (int) getpid ());
  REQUIRE (fd >= 0 && bind (fd, (struct sockaddr *) &a, sizeof a) == 0 &&
           listen (fd, 4) == 0);
  vb_nbd_set_connect_timeout (300);
  n = vb_nbd_connect (a.sun_path, "sda", NULL, NULL);
  CHECK_ERR (n == NULL, "did not answer");
  CHECK_ERR (n == NULL, "sda: ");
  n = vb_nbd_connect_reads (a.sun_path, "sda", NULL);
  CHECK_ERR (n == NULL, "did not answer");
  vb_nbd_set_connect_timeout (60000);
  /* A stop request ends the wait long before the timeout. */
  static volatile sig_atomic_t stop = 1;
  n = vb_nbd_connect (a.sun_path, "sda", NULL, &stop);
  CHECK_ERR (n == NULL, "interrupted");
  CHECK (vb_get_error_code () == VB_ERR_CANCELLED);
  close (fd);
  unlink (a.sun_path);
}

/* A sink that fails stops the copy with its message. */
static int
r_fail (void *op, const void *buf, size_t len, size_t orig)
{
  vb_set_error ("sink says no");
  return -1;
}

static void
test_sink_error (void)
{
  struct vb_nbd *n = vb_nbd_connect (sock, "", NULL, NULL);
  struct rec r = { 0 };
  struct vb_sink k = { .begin_data = r_begin, .data = r_fail,
                       .end_data = r_end, .zero = r_zero, .op = &r };
  struct vb_copy_stats st;

  CHECK (n && vb_nbd_copy (n, &k, NULL, &st) == -1);
  CHECK (strstr (vb_get_error (), "sink says no") != NULL);
  vb_nbd_close (n);
}

static void
test_default_conns (void)
{
  CHECK (vb_nbd_default_conns ("/run/x.sock") == VB_NBD_DEFAULT_CONN);
  CHECK (vb_nbd_default_conns ("nbd://10.0.0.1:10809") == VB_NBD_DEFAULT_CONN);
  CHECK (vb_nbd_default_conns ("nbds://10.0.0.1:10809?tls-certificates=/d") == 1);
}

int
main (void)
{
  pid_t pid;

  snprintf (sock, sizeof sock, "/tmp/test-nbd.%d.sock", (int) getpid ());
  pid = start_server ();
  test_extents ();
  test_default_conns ();
  test_connect_timeout ();
  test_mapper ();
  copy_case (1, false, 0, 0);
  copy_case (3, false, 0, 0);
  copy_case (2, true, 0, 0);
  copy_case (2, true, 2 << 20, 0);
  copy_case (2, false, 0, 1);
  copy_case (3, true, 2 << 20, 3);
  copy_case (1, false, 0, 4096);
  test_sink_error ();
  vb_proc_stop (pid, 2000);
  unlink (sock);
  return vb_test_end ("test-nbd");
}
