/* SPDX-License-Identifier: GPL-3.0-or-later */
/* fuzz_stream.c: libFuzzer target for the stream reader.
 *
 * The input is a whole stream file: it goes into a memfd and the reader
 * runs over it to the end, reading every payload in small chunks, the way
 * restore and verify do.  Any crash, leak, sanitizer report or unbounded
 * allocation is a bug; errors are expected and fine. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "stream/stream.h"
#include "target/target.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
run (struct vb_rfile *rf)
{
  struct vb_reader *r = vb_reader_open (rf, "fuzz.data");
  static unsigned char buf[4096 + 13];
  struct vb_frame f;
  int n, i = 0;

  if (r == NULL)
    return;
  while ((n = vb_reader_next (r, &f)) == 1) {
    ssize_t got;

    /* Leave every third payload to next() to skip. */
    if (++i % 3 == 0)
      continue;
    while ((got = vb_reader_read (r, buf, sizeof buf)) > 0)
      ;
    if (got == -1)
      break;
  }
  vb_reader_close (r);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  int fd = memfd_create ("fuzz", 0);
  size_t off = 0;
  struct vb_meta m;

  if (fd == -1)
    abort ();
  while (off < size) {
    ssize_t n = write (fd, data + off, size - off);

    if (n <= 0)
      abort ();
    off += n;
  }
  struct vb_rfile *rf = vb_rfile_fd (fd, "fuzz.data");
  if (!rf)
    abort ();
  run (rf);
  if (vb_stream_read_meta (rf, "fuzz.data", &m) == 0)
    vb_meta_clear (&m);
  vb_rfile_close (rf);
  close (fd);
  return 0;
}
