/* SPDX-License-Identifier: GPL-3.0-or-later */
/* test-view.c: the view against a plain reference.
 *
 * Property test: random chains (a full and up to 8 incrementals, each file
 * plain, lz4 or zstd, with data, zero and overlapping writes, disks that
 * grow and shrink) are written by the real stream writer; a reference
 * applies every file in order into a buffer, as a replaying restore does.
 * Random ranges read through the view must equal the reference, and the
 * extents must tile the disk with only zeros where they say zero or hole.
 * Seeded:
 * "test-view SEED CASES" repeats a run.  Then damage (a flipped byte in a
 * compressed piece fails that read, naming the file), and 8 threads
 * reading one view at once (run under TSan by tests/run).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/test.h"
#include "common/cleanup.h"
#include "stream/stream.h"
#include "stream/writer.h"
#include "target/target.h"
#include "view/view.h"

/* A view of files given by path, all in one directory, as the tests make
 * them; the target is closed with the view's last use at exit. */
static struct vb_target *vt;
static void close_vt (void) { vb_target_close (vt); }
static struct vb_view *
open_paths (char *const *paths, size_t n, size_t cache)
{
  CLEANUP_FREE char *d = strdup (paths[0]);
  char **names = calloc (n + 1, sizeof *names);
  struct vb_view *v;

  *strrchr (d, '/') = '\0';
  if (!vt) {
    vt = vb_target_dir_open (d, NULL);
    atexit (close_vt);
  }
  for (size_t i = 0; i < n; i++)
    names[i] = strrchr (paths[i], '/') + 1;
  v = vb_view_open_names (vt, names, n, cache);
  free (names);
  return v;
}

#define MAXSIZE (1u << 20)
#define MAXFILES 9

enum method { PLAIN, LZ4, ZSTD };

static uint64_t rng;

static uint64_t
rnd (void)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static uint64_t
rndr (uint64_t lo, uint64_t hi)   /* in [lo, hi] */
{
  return lo + rnd () % (hi - lo + 1);
}

struct tframe {
  bool zero;
  uint64_t start, len;
};

struct tfile {
  enum method m;
  uint64_t vsize, piece;
  struct tframe f[64];
  size_t n;
  unsigned char *data;         /* the disk bytes its data frames hold */
};

/* T as a stream file at PATH, written by the real writer.  lz4 pieces are
 * the peer's 32 MiB chains; zstd pieces are T->piece bytes. */
static void
write_file (const char *path, const struct tfile *t, bool inc)
{
  struct vb_swriter_opts o = {
    .meta = { .virtual_size = t->vsize, .date = "2026-12-01T00:00:00.000000",
              .disk_name = "sda", .disk_format = "qcow2",
              .checkpoint_name = "x.1", .parent_checkpoint = inc ? "x.0" : "",
              .compressed = t->m != PLAIN, .compression_level = 2,
              .compression_method = t->m == ZSTD ? "zstd" : "lz4",
              .incremental = inc, .stream_version = 2 },
    .compress = t->m != PLAIN, .zstd = t->m == ZSTD,
    .level = t->m == ZSTD ? 1 : 2, .workers = 1, .req_size = t->piece,
  };
  CLEANUP_FREE char *dir = strdup (path);
  struct vb_target *tg;
  struct vb_tfile *tf;
  struct vb_swriter *w;

  for (size_t i = 0; i < t->n; i++)
    o.meta.data_size += t->f[i].zero ? 0 : t->f[i].len;
  *strrchr (dir, '/') = '\0';
  REQUIRE ((tg = vb_target_dir_open (dir, NULL)) &&
           (tf = vb_target_create (tg, strrchr (path, '/') + 1)));
  REQUIRE ((w = vb_swriter_new (tf, &o)));
  for (size_t i = 0; i < t->n; i++) {
    const struct tframe *f = &t->f[i];
    CHECK ((f->zero ? vb_swriter_zero (w, f->start, f->len)
                    : vb_swriter_data (w, f->start, t->data + f->start,
                                       f->len)) == 0);
  }
  CHECK (vb_swriter_finish (w, o.meta.data_size) == 0);
  vb_swriter_free (w);
  CHECK (vb_tfile_commit (tf) == 0);
  vb_target_close (tg);
}

/* Random disjoint frames in ascending order inside [0, vsize). */
static void
random_frames (struct tfile *t)
{
  uint64_t pos = 0;

  t->n = 0;
  while (t->n < 64 && pos < t->vsize && rnd () % 8) {
    uint64_t gap = rnd () % 3 ? rndr (0, t->vsize / 16) : 0;
    uint64_t start = pos + gap, len;
    if (start >= t->vsize)
      break;
    len = rndr (1, (t->vsize - start) < 65536 ? t->vsize - start : 65536);
    t->f[t->n++] = (struct tframe) { rnd () % 4 == 0, start, len };
    pos = start + len;
  }
  for (uint64_t i = 0; i < t->vsize; i++)
    t->data[i] = rnd () % 3 ? (unsigned char) rnd () : 0;
}

/* The reference: every file applied in order, cut at each virtual size. */
static void
apply (unsigned char *ref, uint64_t *size, const struct tfile *t)
{
  if (t->vsize < *size)
    memset (ref + t->vsize, 0, *size - t->vsize);
  *size = t->vsize;
  for (size_t i = 0; i < t->n; i++) {
    const struct tframe *f = &t->f[i];
    if (f->zero)
      memset (ref + f->start, 0, f->len);
    else
      memcpy (ref + f->start, t->data + f->start, f->len);
  }
}

static bool
all_zero (const unsigned char *p, uint64_t n)
{
  for (uint64_t i = 0; i < n; i++)
    if (p[i])
      return false;
  return true;
}

static void
check_extents (struct vb_view *v, const unsigned char *ref)
{
  struct vb_view_extent e[7];
  uint64_t pos = 0, size = vb_view_size (v);
  size_t n;

  while ((n = vb_view_extents (v, pos, size - pos, e, 7)) > 0)
    for (size_t i = 0; i < n; i++) {
      CHECK (e[i].off == pos && e[i].len > 0);
      if (e[i].kind != VB_VIEW_DATA)
        CHECK (all_zero (ref + e[i].off, e[i].len));
      pos = e[i].off + e[i].len;
    }
  CHECK (pos == size);
}

static void
check_reads (struct vb_view *v, const unsigned char *ref, uint64_t size)
{
  static unsigned char buf[MAXSIZE];

  for (int r = 0; r < 20 && size; r++) {
    uint64_t off = rndr (0, size - 1);
    uint64_t len = rndr (0, size - off);
    if (vb_view_pread (v, buf, len, off) < 0) {
      CHECK (!"pread failed");
      return;
    }
    if (memcmp (buf, ref + off, len)) {
      fprintf (stderr, "mismatch at 0x%" PRIx64 "+0x%" PRIx64 "\n", off, len);
      CHECK (!"view equals reference");
      return;
    }
  }
  CHECK (vb_view_pread (v, buf, 1, size) < 0);
}

static void
one_case (const char *dir, unsigned n_files)
{
  static struct tfile t[MAXFILES];
  static unsigned char ref[MAXSIZE];
  char *paths[MAXFILES];
  uint64_t size = 0;
  uint64_t base = rndr (4096, MAXSIZE / 2);

  memset (ref, 0, sizeof ref);
  for (unsigned i = 0; i < n_files; i++) {
    t[i].m = rnd () % 3;
    t[i].piece = rndr (512, 40000);
    t[i].vsize = rnd () % 4 ? base : rndr (1, MAXSIZE);
    if (!t[i].data)
      t[i].data = malloc (MAXSIZE);
    random_frames (&t[i]);
    if (asprintf (&paths[i], "%s/f%u.data", dir, i) < 0)
      abort ();
    write_file (paths[i], &t[i], i > 0);
    apply (ref, &size, &t[i]);
  }
  struct vb_view *v = open_paths (paths, n_files, rndr (1, 200000));
  CHECK (v != NULL);
  if (v) {
    CHECK (vb_view_size (v) == size);
    check_reads (v, ref, size);
    check_extents (v, ref);
    vb_view_close (v);
  }
  for (unsigned i = 0; i < n_files; i++) {
    unlink (paths[i]);
    free (paths[i]);
  }
}

/* A flipped byte inside a compressed piece fails the read that needs it,
 * naming the file; reads elsewhere still work. */
static void
test_damage (const char *dir)
{
  struct tfile t = { .m = LZ4, .vsize = 262144, .piece = 65536, .n = 2,
                     .f = { { false, 0, 131072 }, { false, 196608, 65536 } } };
  char path[4096], buf[4096];
  int fd;

  t.data = malloc (t.vsize);
  for (uint64_t i = 0; i < t.vsize; i++)
    t.data[i] = (unsigned char) (i * 7 / 3);
  snprintf (path, sizeof path, "%s/bad.data", dir);
  write_file (path, &t, false);
  char *paths[] = { path };
  struct vb_view *v = open_paths (paths, 1, 0);
  REQUIRE (v);
  /* Flip a byte in the middle of the second frame's compressed piece. */
  fd = open (path, O_RDWR);
  off_t end = lseek (fd, 0, SEEK_END);
  unsigned char c;
  REQUIRE (pread (fd, &c, 1, end - 400) == 1);
  c ^= 0x40;
  REQUIRE (pwrite (fd, &c, 1, end - 400) == 1);
  close (fd);
  CHECK (vb_view_pread (v, buf, sizeof buf, 0) == 0);
  CHECK (memcmp (buf, t.data, sizeof buf) == 0);
  CHECK_ERR (vb_view_pread (v, buf, sizeof buf, 200000) < 0, "bad.data");
  vb_view_close (v);
  unlink (path);
  free (t.data);
}

struct reader_arg {
  struct vb_view *v;
  const unsigned char *ref;
  uint64_t size, seed;
  int bad;
};

static void *
reader_thread (void *p)
{
  struct reader_arg *a = p;
  unsigned char *buf = malloc (MAXSIZE);
  uint64_t s = a->seed;

  for (int i = 0; i < 300; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    uint64_t off = s % a->size, len = (s >> 20) % (a->size - off) % 70000;
    if (vb_view_pread (a->v, buf, len, off) < 0 ||
        memcmp (buf, a->ref + off, len))
      a->bad++;
  }
  free (buf);
  return NULL;
}

/* Eight threads on one view with a cache too small for the pieces they
 * touch: lookups, loads and evictions interleave. */
static void
test_threads (const char *dir)
{
  struct tfile t = { .m = ZSTD, .vsize = MAXSIZE, .piece = 16384 };
  static unsigned char ref[MAXSIZE];
  char path[4096];
  uint64_t size = 0;
  pthread_t th[8];
  struct reader_arg a[8];

  t.data = malloc (MAXSIZE);
  random_frames (&t);
  snprintf (path, sizeof path, "%s/mt.data", dir);
  write_file (path, &t, false);
  memset (ref, 0, sizeof ref);
  apply (ref, &size, &t);
  char *paths[] = { path };
  struct vb_view *v = open_paths (paths, 1, 100000);
  REQUIRE (v);
  for (int i = 0; i < 8; i++) {
    a[i] = (struct reader_arg) { v, ref, size, 0x9E3779B9ull * (i + 1), 0 };
    REQUIRE (pthread_create (&th[i], NULL, reader_thread, &a[i]) == 0);
  }
  for (int i = 0; i < 8; i++) {
    pthread_join (th[i], NULL);
    CHECK (a[i].bad == 0);
  }
  vb_view_close (v);
  unlink (path);
  free (t.data);
}

int
main (int argc, char **argv)
{
  char dir[] = "/tmp/vbview.XXXXXX";
  uint64_t seed = argc > 1 ? strtoull (argv[1], NULL, 0) : 20261201;
  unsigned cases = argc > 2 ? strtoul (argv[2], NULL, 0) : 400;

  REQUIRE (mkdtemp (dir));
  rng = seed ? seed : 1;
  for (unsigned c = 0; c < cases && !failures; c++) {
    one_case (dir, rndr (1, MAXFILES));
    if (failures)
      fprintf (stderr, "case %u of seed %" PRIu64 " failed\n", c, seed);
  }
  test_damage (dir);
  test_threads (dir);
  rmdir (dir);
  return vb_test_end ("test-view");
}
