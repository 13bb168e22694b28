/* SPDX-License-Identifier: GPL-3.0-or-later */
/* test-reader.c: unit tests of the stream reader on whole streams.
 *
 * Streams are built with the writer pieces (frames, metadata, lz4 and zstd
 * pieces, trailer) in a memfd and read back: intact, skipped, truncated,
 * damaged byte by byte, with bad layouts and bad trailers, and piece by
 * piece as the restore's decompression pool takes them.  "--dump KIND DIR"
 * and "--corpus DIR" write such streams out (seeds for the fuzzer).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <zlib.h>

#include "common/error.h"
#include "stream/stream.h"
#include "stream/test-util.h"
#include "stream/writer.h"
#include "target/target.h"

/* Read handles over the tests' fds, freed at exit. */
static struct vb_rfile **rfds;
static size_t nrfds;
static void
free_rfds (void)
{
  for (size_t i = 0; i < nrfds; i++)
    vb_rfile_close (rfds[i]);
  free (rfds);
}
static struct vb_rfile *
rfd (int fd)
{
  struct vb_rfile *rf = vb_rfile_fd (fd, "fd");
  struct vb_rfile **v = realloc (rfds, (nrfds + 1) * sizeof *v);

  if (!v)
    abort ();
  if (!nrfds)
    atexit (free_rfds);
  rfds = v;
  rfds[nrfds++] = rf;
  return rf;
}

/* ---- whole streams ---- */

enum method { PLAIN, LZ4, ZSTD };

struct tframe {
  enum vb_frame_kind kind;
  uint64_t start, length;
};

/* Disk contents: compressible but position dependent. */
static void
disk_bytes (uint64_t off, unsigned char *buf, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    uint64_t o = off + i;
    buf[i] = (o & 0x3ff) < 600 ? (uint8_t) ((o >> 10) * 13) : (uint8_t) (o * 7 ^ (o >> 8));
  }
}

static void
xwrite (int fd, const void *p, size_t n)
{
  if (write (fd, p, n) != (ssize_t) n)
    abort ();
}

#define CHUNK (1024 * 1024)
/* Disk bytes per piece: the peer's size, or our zstd size for some tests. */
static uint64_t piece_len = VB_STREAM_MAX_PIECE;

/* Compress one data frame in pieces; returns the piece count. */
static size_t
write_compressed (int fd, enum method m, uint64_t start, uint64_t len,
                  uint64_t *sizes, unsigned char *in, unsigned char *out)
{
  struct vb_lz4c *l = m == LZ4 ? vb_lz4c_new (2) : NULL;
  struct vb_zstdc *z = m == ZSTD ? vb_zstdc_new (3) : NULL;
  size_t cap = m == LZ4 ? vb_lz4c_bound (l, CHUNK) : vb_zstdc_bound (z, CHUNK);
  size_t np = 0;

  for (uint64_t p = 0; p < len; p += piece_len, np++) {
    uint64_t plen = len - p < piece_len ? len - p : piece_len;
    ssize_t r = l ? vb_lz4c_begin (l, plen, out, cap) : vb_zstdc_begin (z, plen, out, cap);

    sizes[np] = r;
    xwrite (fd, out, r);
    for (uint64_t q = 0; q < plen; q += CHUNK) {
      size_t k = plen - q < CHUNK ? plen - q : CHUNK;

      disk_bytes (start + p + q, in, k);
      r = l ? vb_lz4c_update (l, in, k, out, cap) : vb_zstdc_update (z, in, k, out, cap);
      CHECK (r >= 0);
      xwrite (fd, out, r);
      sizes[np] += r;
    }
    r = l ? vb_lz4c_end (l, out, cap) : vb_zstdc_end (z, out, cap);
    CHECK (r > 0);
    xwrite (fd, out, r);
    sizes[np] += r;
  }
  vb_lz4c_free (l);
  vb_zstdc_free (z);
  return np;
}

static void
write_frame (int fd, enum vb_frame_kind k, uint64_t s, uint64_t l)
{
  char h[VB_FRAME_LEN];

  vb_frame_format (h, k, s, l);
  xwrite (fd, h, sizeof h);
}

/* Streams of a layout no writer of ours makes (lz4 pieces shorter than
 * VB_STREAM_MAX_PIECE, as the peer writes when its server takes smaller
 * requests; a meta frame among the data) are built by hand in a memfd;
 * every other stream is written by the real writer (stream/writer.h). */
static int build_by_hand (enum method m, uint64_t vsize,
                          const struct tframe *f, size_t n,
                          uint64_t data_size);

static char tdir[] = "/tmp/vbreader.XXXXXX";

static void
writer_frames (struct vb_swriter *w, const struct tframe *f, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    if (f[i].kind == VB_FRAME_ZERO) {
      CHECK (vb_swriter_zero (w, f[i].start, f[i].length) == 0);
      continue;
    }
    unsigned char *buf = malloc (f[i].length);
    REQUIRE (buf);
    disk_bytes (f[i].start, buf, f[i].length);
    CHECK (vb_swriter_data (w, f[i].start, buf, f[i].length) == 0);
    free (buf);
  }
}

/* Build a stream file, opened read-write and already unlinked, so tests
 * may damage it.  DATA_SIZE (UINT64_MAX: computed) goes into the metadata
 * as is, so tests can lie. */
static int
build_stream (enum method m, uint64_t vsize, const struct tframe *f, size_t n,
              uint64_t data_size)
{
  struct vb_swriter_opts o = { .compress = m != PLAIN, .zstd = m == ZSTD,
                               .level = m == ZSTD ? 3 : 2, .workers = 1,
                               .req_size = m == ZSTD ? piece_len : CHUNK };
  struct vb_target *t;
  struct vb_tfile *tf;
  struct vb_swriter *w;
  char path[64];
  int fd;

  bool odd = m == LZ4 && piece_len != VB_STREAM_MAX_PIECE;

  for (size_t i = 0; i < n; i++)
    odd |= f[i].kind != VB_FRAME_DATA && f[i].kind != VB_FRAME_ZERO;
  if (odd)
    return build_by_hand (m, vsize, f, n, data_size);
  static bool made;             /* mkdtemp's name may itself hold an 'X' */
  if (!made)
    REQUIRE ((made = mkdtemp (tdir) != NULL));
  fill_meta (&o.meta, "sda", m != PLAIN);
  o.meta.virtual_size = vsize;
  o.meta.data_size = 0;
  for (size_t i = 0; i < n; i++)
    if (f[i].kind == VB_FRAME_DATA)
      o.meta.data_size += f[i].length;
  if (data_size != UINT64_MAX)
    o.meta.data_size = data_size;
  free (o.meta.compression_method);
  o.meta.compression_method = strdup (m == ZSTD ? "zstd" : "lz4");
  REQUIRE ((t = vb_target_dir_open (tdir, NULL)) && (tf = vb_target_create (t, "s")));
  REQUIRE ((w = vb_swriter_new (tf, &o)));
  writer_frames (w, f, n);
  CHECK (vb_swriter_finish (w, o.meta.data_size) == 0);
  vb_swriter_free (w);
  CHECK (vb_tfile_commit (tf) == 0);
  vb_target_close (t);
  vb_meta_clear (&o.meta);
  snprintf (path, sizeof path, "%s/s", tdir);
  REQUIRE ((fd = open (path, O_RDWR)) >= 0);
  unlink (path);
  return fd;
}

static int
build_by_hand (enum method m, uint64_t vsize, const struct tframe *f,
               size_t n, uint64_t data_size)
{
  int fd = memfd_create ("stream", 0);
  struct vb_meta meta;
  struct vb_trailer t;
  unsigned char *in = malloc (CHUNK), *out = malloc (2 * CHUNK);
  size_t len;
  char *json;

  fill_meta (&meta, "sda", m != PLAIN);
  meta.virtual_size = vsize;
  meta.data_size = 0;
  for (size_t i = 0; i < n; i++)
    if (f[i].kind == VB_FRAME_DATA)
      meta.data_size += f[i].length;
  if (data_size != UINT64_MAX)
    meta.data_size = data_size;
  free (meta.compression_method);
  meta.compression_method = strdup (m == ZSTD ? "zstd" : "lz4");
  json = vb_meta_to_json (&meta, &len);
  write_frame (fd, VB_FRAME_META, 0, len);
  xwrite (fd, json, len);
  xwrite (fd, VB_TERM, VB_TERM_LEN);
  free (json);
  vb_meta_clear (&meta);
  vb_trailer_init (&t);
  for (size_t i = 0; i < n; i++) {
    write_frame (fd, f[i].kind, f[i].start, f[i].length);
    if (f[i].kind != VB_FRAME_DATA)
      continue;
    if (m == PLAIN) {
      for (uint64_t q = 0; q < f[i].length; q += CHUNK) {
        size_t k = f[i].length - q < CHUNK ? f[i].length - q : CHUNK;
        disk_bytes (f[i].start + q, in, k);
        xwrite (fd, in, k);
      }
    }
    else {
      uint64_t sizes[64];
      size_t np = write_compressed (fd, m, f[i].start, f[i].length, sizes, in, out);
      CHECK (vb_trailer_add_frame (&t, f[i].length, sizes, np) == 0);
    }
    xwrite (fd, VB_TERM, VB_TERM_LEN);
  }
  write_frame (fd, VB_FRAME_STOP, 0, 0);
  if (m != PLAIN) {
    json = vb_trailer_to_json (&t, &len);
    xwrite (fd, json, len);
    xwrite (fd, VB_TERM, VB_TERM_LEN);
    write_frame (fd, VB_FRAME_COMP, 0, len);
    free (json);
  }
  vb_trailer_clear (&t);
  free (in);
  free (out);
  return fd;
}

/* Read the whole stream, checking frames against F and payloads against
 * disk_bytes.  Returns 0, or -1 at the first error. */
static int
read_stream (int fd, const struct tframe *f, size_t n, size_t bufsize)
{
  struct vb_reader *r = vb_reader_open (rfd (fd), "sda.full.data");
  unsigned char *buf = malloc (bufsize), *want = malloc (bufsize);
  struct vb_frame fr;
  size_t i = 0;
  int rc = -1, nr;

  if (r == NULL)
    goto out;
  while ((nr = vb_reader_next (r, &fr)) == 1) {
    uint64_t pos = 0;
    ssize_t got;

    if (f && (i >= n + 1 || fr.kind != (i < n ? f[i].kind : VB_FRAME_STOP)
              || (i < n && (fr.start != f[i].start || fr.length != f[i].length))))
      goto out;
    i++;
    while ((got = vb_reader_read (r, buf, bufsize)) > 0) {
      disk_bytes (fr.start + pos, want, got);
      if (f && memcmp (buf, want, got) != 0) {
        vb_set_error ("payload differs at 0x%" PRIx64, fr.start + pos);
        goto out;
      }
      pos += got;
    }
    if (got == -1 || (fr.kind == VB_FRAME_DATA && pos != fr.length))
      goto out;
  }
  if (nr == 0 && (f == NULL || i == n + 1) && vb_reader_next (r, &fr) == 0)
    rc = 0;
 out:
  vb_reader_close (r);
  free (buf);
  free (want);
  return rc;
}

static const struct tframe small_frames[] = {
  { VB_FRAME_DATA, 0, 4096 },
  { VB_FRAME_ZERO, 4096, 61440 },
  { VB_FRAME_DATA, 65536, 200000 },
  { VB_FRAME_ZERO, 265536, 1 << 20 },
  { VB_FRAME_DATA, 2 << 20, 512 },
};
#define NSMALL (sizeof small_frames / sizeof small_frames[0])
#define VSIZE (4 << 20)

static off_t
fd_size (int fd)
{
  return lseek (fd, 0, SEEK_END);
}

static void
flip (int fd, off_t off, unsigned char mask)
{
  unsigned char c;

  if (pread (fd, &c, 1, off) != 1)
    abort ();
  c ^= mask;
  if (pwrite (fd, &c, 1, off) != 1)
    abort ();
}

/* Copy of FD cut at LEN. */
static int
truncated_copy (int fd, off_t len)
{
  int c = memfd_create ("cut", 0);
  unsigned char *buf = malloc (len ? len : 1);

  if (pread (fd, buf, len, 0) != len)
    abort ();
  xwrite (c, buf, len);
  free (buf);
  return c;
}

/* The peer's own writer (virtnbdbackup 1.9.15 writeBlock/writeChunk,
 * dumpMetadata with the clock fixed to our test date, writeFrame and
 * writeCompressionTrailer, fed disk_bytes) produced files of these lengths
 * and adler32s for small_frames: ours must be the same bytes. */
static void
test_peer_identical (void)
{
  static const struct { enum method m; off_t len; uint32_t adler; } peer[] = {
    { PLAIN, 205232, 1066457430u },
    { LZ4, 35143, 651705388u },
  };

  for (size_t i = 0; i < 2; i++) {
    int fd = build_stream (peer[i].m, VSIZE, small_frames, NSMALL, UINT64_MAX);
    off_t size = fd_size (fd);
    unsigned char *buf = malloc (size);

    CHECK (pread (fd, buf, size, 0) == size);
    CHECK (size == peer[i].len);
    CHECK (adler32 (adler32 (0, NULL, 0), buf, size) == peer[i].adler);
    free (buf);
    close (fd);
  }
}

static void
test_roundtrip (void)
{
  for (enum method m = PLAIN; m <= ZSTD; m++) {
    int fd = build_stream (m, VSIZE, small_frames, NSMALL, UINT64_MAX);
    struct vb_meta meta;

    CHECK (read_stream (fd, small_frames, NSMALL, 4 << 20) == 0);
    CHECK (read_stream (fd, small_frames, NSMALL, 1000) == 0);
    CHECK (read_stream (fd, small_frames, NSMALL, 1) == 0);
    CHECK (vb_stream_read_meta (rfd (fd), "x", &meta) == 0);
    CHECK (meta.virtual_size == VSIZE && meta.data_size == 4096 + 200000 + 512);
    CHECK (meta.compressed == (m != PLAIN));
    vb_meta_clear (&meta);
    uint64_t zeros = 99;
    CHECK (vb_stream_count_zero_frames (rfd (fd), "x", &zeros) == 0 && zeros == 2);
    int cut = truncated_copy (fd, fd_size (fd) - 1);
    CHECK (vb_stream_count_zero_frames (rfd (cut), "x", &zeros) < 0);
    close (cut);
    close (fd);
  }
}

/* A compressed incremental of an unchanged disk has no frames at all:
 * meta, stop, "[]" trailer. */
static void
test_empty (void)
{
  for (enum method m = PLAIN; m <= ZSTD; m++) {
    int fd = build_stream (m, VSIZE, NULL, 0, UINT64_MAX);
    CHECK (read_stream (fd, NULL, 0, 4 << 20) == 0);
    close (fd);
  }
}

/* Skipping frames (and next() without reading) still validates. */
static void
test_skip (void)
{
  int fd = build_stream (LZ4, VSIZE, small_frames, NSMALL, UINT64_MAX);
  struct vb_reader *r = vb_reader_open (rfd (fd), "s");
  struct vb_frame f;
  unsigned char b[10];
  int n = 0;

  CHECK (r != NULL);
  CHECK (vb_reader_next (r, &f) == 1 && vb_reader_read (r, b, 10) == 10);
  CHECK (vb_reader_skip (r) == 0 && vb_reader_read (r, b, 10) == 0);
  while (vb_reader_next (r, &f) == 1)
    n++;
  CHECK (n == 5 && f.kind == VB_FRAME_STOP);
  vb_reader_close (r);
  /* A damaged piece is caught by skip too. */
  flip (fd, fd_size (fd) - 200, 0x04);
  r = vb_reader_open (rfd (fd), "s");
  CHECK (r != NULL);
  while ((n = vb_reader_next (r, &f)) == 1)
    ;
  CHECK (n == -1);
  {
    char *first = strdup (vb_get_error ());

    vb_set_error ("other");
    CHECK (vb_reader_next (r, &f) == -1);       /* sticky, same message */
    CHECK (strcmp (vb_get_error (), first) == 0 && strstr (first, "offset 0x"));
    free (first);
  }
  vb_reader_close (r);
  close (fd);
}

/* Large frames: several pieces, the peer's {"total": [...]} form. */
static void
test_big (void)
{
  static const struct tframe big[] = {
    { VB_FRAME_DATA, 0, VB_STREAM_MAX_PIECE },
    { VB_FRAME_DATA, VB_STREAM_MAX_PIECE, VB_STREAM_MAX_PIECE + 12345 },
  };
  int fd = build_stream (LZ4, 3ULL * VB_STREAM_MAX_PIECE, big, 2, UINT64_MAX);
  char tail[200];
  ssize_t n = pread (fd, tail, sizeof tail - 1, fd_size (fd) - (sizeof tail - 1));

  tail[n > 0 ? n : 0] = '\0';
  CHECK (n > 0 && memmem (tail, n, "[{\"", 3) && memmem (tail, n, "]}, {\"", 6));
  CHECK (read_stream (fd, big, 2, 4 << 20) == 0);
  /* Byte-identical to the peer's writer on the same disk (see
   * test_peer_identical): one 32 MiB piece and a 32 MiB + 12345 frame. */
  {
    off_t size = fd_size (fd);
    unsigned char *buf = malloc (size);

    CHECK (pread (fd, buf, size, 0) == size);
    CHECK (size == 9512255);
    CHECK (adler32 (adler32 (0, NULL, 0), buf, size) == 1612009310u);
    free (buf);
  }
  close (fd);
  fd = build_stream (ZSTD, 3ULL * VB_STREAM_MAX_PIECE, big, 2, UINT64_MAX);
  CHECK (read_stream (fd, big, 2, 3 << 20) == 0);
  close (fd);
}

static void
test_truncation (void)
{
  for (enum method m = PLAIN; m <= ZSTD; m++) {
    int fd = build_stream (m, VSIZE, small_frames, NSMALL, UINT64_MAX);
    off_t size = fd_size (fd);
    int bad = 0;

    for (off_t cut = 0; cut < size; cut += (cut < 2000 || size - cut < 2000) ? 1 : 997) {
      int c = truncated_copy (fd, cut);

      vb_set_error ("none");
      if (read_stream (c, NULL, 0, 65536) != -1 || strstr (vb_get_error (), "offset 0x") == NULL) {
        fprintf (stderr, "method %d cut at %jd: accepted or no offset: %s\n",
                 m, (intmax_t) cut, vb_get_error ());
        bad++;
      }
      close (c);
    }
    CHECK (bad == 0);
    close (fd);
  }
  {
    int fd = build_stream (PLAIN, VSIZE, small_frames, NSMALL, UINT64_MAX);
    int c = truncated_copy (fd, fd_size (fd) - 40);

    CHECK_ERR (read_stream (c, NULL, 0, 65536) == -1, "truncated");
    close (c);
    close (fd);
  }
}

/* Expect reading FD to fail with an error naming OFFSET and SUBSTR. */
static void
expect_fail (int fd, uint64_t offset, const char *substr, int line)
{
  char want[64];

  snprintf (want, sizeof want, "sda.full.data: offset 0x%" PRIx64 ":", offset);
  vb_set_error ("none");
  if (read_stream (fd, NULL, 0, 65536) != -1 ||
      strstr (vb_get_error (), want) == NULL ||
      strstr (vb_get_error (), substr) == NULL) {
    fprintf (stderr, "line %d: wanted failure \"%s ... %s\", got: %s\n",
             line, want, substr, vb_get_error ());
    failures++;
  }
}
#define EXPECT_FAIL(fd, off, s) expect_fail (fd, off, s, __LINE__)

/* Offset of the I'th frame header (uncompressed layout). */
static uint64_t
plain_offset (int fd, size_t idx)
{
  struct vb_reader *r = vb_reader_open (rfd (fd), "x");
  struct vb_frame f = { 0 };

  for (size_t i = 0; i <= idx; i++)
    if (vb_reader_next (r, &f) != 1)
      abort ();
  vb_reader_close (r);
  return f.file_offset;
}

static void
test_damage (void)
{
  int fd;
  uint64_t off;

  /* Header damage. */
  fd = build_stream (PLAIN, VSIZE, small_frames, NSMALL, UINT64_MAX);
  off = plain_offset (fd, 2);
  flip (fd, off, 0x20);                         /* "data" -> "Data" */
  EXPECT_FAIL (fd, off, "bad frame kind");
  flip (fd, off, 0x20);
  flip (fd, off + 10, 0x20);                    /* digit -> other char */
  EXPECT_FAIL (fd, off, "hex");
  flip (fd, off + 10, 0x20);
  flip (fd, off + 38, 0x01);
  EXPECT_FAIL (fd, off, "CR LF");
  flip (fd, off + 38, 0x01);
  /* CR LF after an uncompressed payload. */
  flip (fd, off + 40 + 200000, 0x01);
  EXPECT_FAIL (fd, off + 40 + 200000, "not followed by CR LF");
  flip (fd, off + 40 + 200000, 0x01);
  /* The payload itself has no checksum in the format: reads "fine". */
  flip (fd, off + 40 + 5, 0x01);
  CHECK (read_stream (fd, NULL, 0, 65536) == 0);
  CHECK (read_stream (fd, small_frames, NSMALL, 65536) == -1);
  flip (fd, off + 40 + 5, 0x01);
  /* Meta JSON. */
  flip (fd, 40, 0x01);
  EXPECT_FAIL (fd, 40, "metadata: invalid JSON");
  flip (fd, 40, 0x01);
  flip (fd, 0, 0x01);
  EXPECT_FAIL (fd, 0, "bad frame kind");
  flip (fd, 0, 0x01);
  /* Bytes after stop. */
  lseek (fd, 0, SEEK_END);
  xwrite (fd, "x", 1);
  EXPECT_FAIL (fd, fd_size (fd) - 1, "after the stop frame");
  CHECK (ftruncate (fd, fd_size (fd) - 1) == 0);
  CHECK (read_stream (fd, small_frames, NSMALL, 65536) == 0);
  close (fd);

  /* Compressed payload and trailer. */
  fd = build_stream (LZ4, VSIZE, small_frames, NSMALL, UINT64_MAX);
  off = plain_offset (fd, 2);
  flip (fd, off + 40 + 100, 0x08);
  EXPECT_FAIL (fd, off + 40, "lz4");
  flip (fd, off + 40 + 100, 0x08);
  CHECK (read_stream (fd, small_frames, NSMALL, 65536) == 0);
  flip (fd, fd_size (fd) - 41, 0x01);           /* LF before comp */
  EXPECT_FAIL (fd, fd_size (fd) - 42, "compression trailer not followed by CR LF");
  flip (fd, fd_size (fd) - 41, 0x01);
  flip (fd, fd_size (fd) - 40, 0x01);
  EXPECT_FAIL (fd, fd_size (fd) - 40, "no comp frame");
  flip (fd, fd_size (fd) - 40, 0x01);
  close (fd);
}

/* Builds the given frames and expects a failure at frame BADIDX, whose
 * header offset is known for uncompressed streams. */
static void
expect_frames_fail (enum method m, const struct tframe *f, size_t n,
                    uint64_t data_size, size_t badidx, const char *s, int line)
{
  int fd = build_stream (m, VSIZE, f, n, data_size);
  const struct tframe *prev = &f[badidx - 1];
  uint64_t off = plain_offset (fd, badidx - 1) + VB_FRAME_LEN;

  if (prev->kind == VB_FRAME_DATA)
    off += prev->length + VB_TERM_LEN;
  if (m == PLAIN)
    expect_fail (fd, off, s, line);
  else
    CHECK_ERR (read_stream (fd, NULL, 0, 65536) == -1, s);
  close (fd);
}

static void
test_bad_layout (void)
{
  static const struct tframe overlap[] = {
    { VB_FRAME_DATA, 0, 8192 }, { VB_FRAME_ZERO, 4096, 4096 },
  };
  static const struct tframe descend[] = {
    { VB_FRAME_ZERO, 8192, 4096 }, { VB_FRAME_DATA, 0, 4096 },
  };
  static const struct tframe beyond[] = {
    { VB_FRAME_ZERO, 0, 4096 }, { VB_FRAME_DATA, VSIZE - 4096, 8192 },
  };
  static const struct tframe empty[] = {
    { VB_FRAME_ZERO, 0, 4096 }, { VB_FRAME_ZERO, 8192, 0 },
  };
  static const struct tframe meta2[] = {
    { VB_FRAME_ZERO, 0, 4096 }, { VB_FRAME_META, 0, 0 },
  };
  int fd;

  expect_frames_fail (PLAIN, overlap, 2, UINT64_MAX, 1, "overlaps", __LINE__);
  expect_frames_fail (LZ4, overlap, 2, UINT64_MAX, 1, "overlaps", __LINE__);
  expect_frames_fail (PLAIN, descend, 2, UINT64_MAX, 1, "overlaps", __LINE__);
  expect_frames_fail (PLAIN, beyond, 2, UINT64_MAX, 1, "beyond the virtual size", __LINE__);
  expect_frames_fail (PLAIN, empty, 2, UINT64_MAX, 1, "empty zero frame", __LINE__);
  expect_frames_fail (PLAIN, meta2, 2, UINT64_MAX, 1, "unexpected meta frame", __LINE__);

  /* dataSize that does not match the data frames: caught at stop. */
  fd = build_stream (PLAIN, VSIZE, small_frames, NSMALL, 4096);
  EXPECT_FAIL (fd, fd_size (fd) - 40, "dataSize");
  close (fd);
  fd = build_stream (ZSTD, VSIZE, small_frames, NSMALL, 1);
  CHECK_ERR (read_stream (fd, NULL, 0, 65536) == -1, "dataSize");
  close (fd);
}

/* Trailer entries that do not match the data frames. */
static void
test_bad_trailer (void)
{
  static const struct tframe one[] = { { VB_FRAME_DATA, 0, 100000 } };
  int fd = build_stream (LZ4, VSIZE, one, 1, UINT64_MAX);
  off_t size = fd_size (fd);
  char tail[128];
  ssize_t n = pread (fd, tail, sizeof tail, size - sizeof tail);
  char *lb = memrchr (tail, '[', n);
  unsigned long csize = strtoul (lb + 1, NULL, 10);
  off_t body = size - (tail + n - lb);          /* where the JSON starts */
  char json[64], hdr[VB_FRAME_LEN];
  int len;

  /* Rewrite the trailer: two entries for one frame. */
  len = snprintf (json, sizeof json, "[%lu, 5]\r\n", csize);
  CHECK (ftruncate (fd, body) == 0);
  CHECK (pwrite (fd, json, len, body) == len);
  vb_frame_format (hdr, VB_FRAME_COMP, 0, len - 2);
  CHECK (pwrite (fd, hdr, sizeof hdr, body + len) == sizeof hdr);
  CHECK_ERR (read_stream (fd, NULL, 0, 65536) == -1, "trailer lists 2");
  /* Compressed size one too small / too large. */
  for (int delta = -1; delta <= 1; delta += 2) {
    len = snprintf (json, sizeof json, "[%lu]\r\n", csize + delta);
    CHECK (ftruncate (fd, body) == 0);
    CHECK (pwrite (fd, json, len, body) == len);
    vb_frame_format (hdr, VB_FRAME_COMP, 0, len - 2);
    CHECK (pwrite (fd, hdr, sizeof hdr, body + len) == sizeof hdr);
    CHECK (read_stream (fd, NULL, 0, 65536) == -1);
    CHECK (strstr (vb_get_error (), "offset 0x") != NULL);
  }
  /* No trailer entry at all. */
  len = snprintf (json, sizeof json, "[]\r\n");
  CHECK (ftruncate (fd, body) == 0);
  CHECK (pwrite (fd, json, len, body) == len);
  vb_frame_format (hdr, VB_FRAME_COMP, 0, len - 2);
  CHECK (pwrite (fd, hdr, sizeof hdr, body + len) == sizeof hdr);
  CHECK_ERR (read_stream (fd, NULL, 0, 65536) == -1, "no compression trailer entry");
  close (fd);
}

/* ---- pieces by layout (vb_reader_pass), each then read and decompressed
 * as the index and view do ---- */

/* Decompress one piece as a parallel caller does and check its content. */
static int
check_piece (enum vb_comp_method m, const unsigned char *in, size_t len,
             uint64_t content, uint64_t disk)
{
  unsigned char *out = malloc (content), *want = malloc (content);
  int rc = m == VB_COMP_ZSTD ? vb_zstd_decompress_frame (in, len, out, content)
    : vb_lz4_decompress_frame (in, len, out, content);

  disk_bytes (disk, want, content);
  if (rc == 0 && memcmp (out, want, content) != 0) {
    vb_set_error ("piece content differs at 0x%" PRIx64, disk);
    rc = -1;
  }
  free (out);
  free (want);
  return rc;
}

struct piece_walk {
  int fd;
  enum vb_comp_method m;
  uint64_t disk;
};

static int
one_piece (void *op, uint64_t file_offset, uint64_t csize, uint64_t content)
{
  struct piece_walk *w = op;
  unsigned char *in = malloc (csize);
  int rc = -1;

  if (in && pread (w->fd, in, csize, file_offset) == (ssize_t) csize &&
      check_piece (w->m, in, csize, content, w->disk) == 0)
    rc = 0;
  else if (in && strstr (vb_get_error (), "differs") == NULL)
    vb_prefix_error ("piece at 0x%" PRIx64, file_offset);
  w->disk += content;
  free (in);
  return rc;
}

static int
read_frame_pieces (struct vb_reader *r, int fd, enum vb_comp_method m,
                   const struct vb_frame *fr)
{
  struct piece_walk w = { .fd = fd, .m = m, .disk = fr->start };

  if (vb_reader_pass (r, one_piece, &w) == -1)
    return -1;
  if (w.disk != fr->start + fr->length) {
    vb_set_error ("pieces end at 0x%" PRIx64, w.disk);
    return -1;
  }
  return 0;
}

/* Like read_stream, taking data frames piece by piece. */
static int
read_pieces (int fd, const struct tframe *f, size_t n)
{
  struct vb_reader *r = vb_reader_open (rfd (fd), "sda.full.data");
  enum vb_comp_method m;
  struct vb_frame fr;
  size_t i = 0;
  int nr = -1;

  if (r == NULL)
    return -1;
  if (!vb_reader_compression (r, &m))
    vb_set_error ("not compressed");
  else
    while ((nr = vb_reader_next (r, &fr)) == 1) {
      if (f && fr.kind != VB_FRAME_STOP &&
          (i >= n || fr.start != f[i].start || fr.length != f[i].length)) {
        vb_set_error ("frame %zu differs", i);
        nr = -1;
        break;
      }
      i++;
      if (fr.kind == VB_FRAME_DATA && read_frame_pieces (r, fd, m, &fr) == -1) {
        nr = -1;
        break;
      }
    }
  if (nr == 0 && f && i != n + 1) {
    vb_set_error ("%zu frames read, %zu expected", i, n + 1);
    nr = -1;
  }
  vb_reader_close (r);
  return nr;
}

static const struct tframe piece_frames[] = {
  { VB_FRAME_DATA, 0, 4096 },
  { VB_FRAME_ZERO, 4096, 61440 },
  { VB_FRAME_DATA, 65536, 1000000 },    /* 3 pieces of 256 KiB and a rest */
  { VB_FRAME_DATA, 2 << 20, 512 },
};
#define NPIECEF (sizeof piece_frames / sizeof piece_frames[0])

static void
test_pieces_roundtrip (void)
{
  int fd = build_stream (LZ4, VSIZE, small_frames, NSMALL, UINT64_MAX);
  off_t size = fd_size (fd);
  unsigned char *buf = malloc (size);

  /* The peer's own bytes (see test_peer_identical), piece by piece. */
  CHECK (pread (fd, buf, size, 0) == size && size == 35143);
  CHECK (adler32 (adler32 (0, NULL, 0), buf, size) == 651705388u);
  CHECK (read_pieces (fd, small_frames, NSMALL) == 0);
  free (buf);
  close (fd);
  piece_len = 256 * 1024;
  for (enum method m = LZ4; m <= ZSTD; m++) {
    fd = build_stream (m, VSIZE, piece_frames, NPIECEF, UINT64_MAX);
    CHECK (read_pieces (fd, piece_frames, NPIECEF) == 0);
    CHECK (read_stream (fd, piece_frames, NPIECEF, 65536) == 0);
    close (fd);
  }
  fd = build_stream (ZSTD, VSIZE, NULL, 0, UINT64_MAX);
  CHECK (read_pieces (fd, NULL, 0) == 0);
  close (fd);
  piece_len = VB_STREAM_MAX_PIECE;
}

/* The frame header says one byte less or more than the pieces hold. */
static void
test_pieces_length (void)
{
  piece_len = 256 * 1024;
  for (enum method m = LZ4; m <= ZSTD; m++) {
    int fd = build_stream (m, VSIZE, piece_frames, NPIECEF, UINT64_MAX);
    uint64_t off = plain_offset (fd, 2);
    char hdr[VB_FRAME_LEN], want[80];

    vb_frame_format (hdr, VB_FRAME_DATA, 65536, 1000000 - 1);
    CHECK (pwrite (fd, hdr, sizeof hdr, off) == sizeof hdr);
    snprintf (want, sizeof want, "piece 3 of data frame at 0x%" PRIx64, off);
    CHECK_ERR (read_pieces (fd, NULL, 0) == -1, want);
    CHECK_ERR (read_pieces (fd, NULL, 0) == -1, "more than the 0x");
    vb_frame_format (hdr, VB_FRAME_DATA, 65536, 1000000 + 1);
    CHECK (pwrite (fd, hdr, sizeof hdr, off) == sizeof hdr);
    snprintf (want, sizeof want, "offset 0x%" PRIx64 ": data frame pieces "
              "hold 0x1 bytes less", off);
    CHECK_ERR (read_pieces (fd, NULL, 0) == -1, want);
    close (fd);
  }
  piece_len = VB_STREAM_MAX_PIECE;
}

/* Open R on FD and make its third frame (piece_frames[2]) current. */
static struct vb_reader *
open_at_big (int fd)
{
  struct vb_reader *r = vb_reader_open (rfd (fd), "p");
  struct vb_frame f;

  for (int i = 0; r && i < 3; i++)
    CHECK (vb_reader_next (r, &f) == 1);
  CHECK (r && f.kind == VB_FRAME_DATA && f.length == 1000000);
  return r;
}

static int
first_size (void *op, uint64_t file_offset, uint64_t csize, uint64_t content)
{
  uint64_t *first = op;

  if (!*first)
    *first = csize;
  return 0;
}

static void
test_pieces_damage (void)
{
  struct vb_reader *r;
  uint64_t first = 0;
  int fd, c;

  piece_len = 256 * 1024;
  fd = build_stream (ZSTD, VSIZE, piece_frames, NPIECEF, UINT64_MAX);
  r = open_at_big (fd);
  CHECK (vb_reader_pass (r, first_size, &first) == 0 && first > 0);
  vb_reader_close (r);
  /* Truncated under the reader's feet: the second piece's header is cut. */
  c = truncated_copy (fd, fd_size (fd));
  r = open_at_big (c);
  CHECK (ftruncate (c, plain_offset (fd, 2) + VB_FRAME_LEN + first + 10) == 0);
  CHECK_ERR (vb_reader_pass (r, NULL, NULL) == -1, "truncated");
  CHECK_ERR (vb_reader_pass (r, NULL, NULL) == -1, "offset 0x");
  vb_reader_close (r);
  close (c);
  /* A flipped byte passes the reader but not the decompression. */
  flip (fd, plain_offset (fd, 2) + VB_FRAME_LEN + 5000, 0x10);
  vb_set_error ("none");
  CHECK (read_pieces (fd, piece_frames, NPIECEF) == -1);
  CHECK (strcmp (vb_get_error (), "none") != 0);
  close (fd);
  piece_len = VB_STREAM_MAX_PIECE;
}

static void
save_fd (int fd, const char *dir, const char *name)
{
  char path[4096];
  off_t size = fd_size (fd);
  unsigned char *buf = malloc (size);
  FILE *fp;

  snprintf (path, sizeof path, "%s/%s", dir, name);
  fp = fopen (path, "w");
  if (fp == NULL || pread (fd, buf, size, 0) != size ||
      fwrite (buf, 1, size, fp) != (size_t) size || fclose (fp) != 0)
    abort ();
  free (buf);
  close (fd);
}

/* --dump DIR: the streams of test_peer_identical and test_big, to compare
 * with what the peer writes or to feed to its reader.
 * --corpus DIR: the seed corpus of tests/fuzz, tiny valid streams. */
static void
dump (const char *what, const char *dir)
{
  static const struct tframe big[] = {
    { VB_FRAME_DATA, 0, VB_STREAM_MAX_PIECE },
    { VB_FRAME_DATA, VB_STREAM_MAX_PIECE, VB_STREAM_MAX_PIECE + 12345 },
  };
  static const struct tframe tiny[] = {
    { VB_FRAME_DATA, 0, 512 }, { VB_FRAME_ZERO, 512, 3584 },
    { VB_FRAME_DATA, 4096, 100 },
  };

  if (strcmp (what, "--dump") == 0) {
    save_fd (build_stream (PLAIN, VSIZE, small_frames, NSMALL, UINT64_MAX),
             dir, "plain.data");
    save_fd (build_stream (LZ4, VSIZE, small_frames, NSMALL, UINT64_MAX),
             dir, "lz4.data");
    save_fd (build_stream (LZ4, 3ULL * VB_STREAM_MAX_PIECE, big, 2, UINT64_MAX),
             dir, "big.data");
    return;
  }
  save_fd (build_stream (PLAIN, 8192, tiny, 3, UINT64_MAX), dir, "plain.data");
  save_fd (build_stream (LZ4, 8192, tiny, 3, UINT64_MAX), dir, "lz4.data");
  save_fd (build_stream (ZSTD, 8192, tiny, 3, UINT64_MAX), dir, "zstd.data");
}

int
main (int argc, char **argv)
{
  if (argc == 3 && (strcmp (argv[1], "--dump") == 0 ||
                    strcmp (argv[1], "--corpus") == 0)) {
    dump (argv[1], argv[2]);
    return 0;
  }
  test_roundtrip ();
  test_empty ();
  test_peer_identical ();
  test_skip ();
  test_truncation ();
  test_damage ();
  test_bad_layout ();
  test_bad_trailer ();
  test_big ();
  test_pieces_roundtrip ();
  test_pieces_length ();
  test_pieces_damage ();
  rmdir (tdir);
  return vb_test_end ("test-reader");
}
