/* Whole-file walks over the frame headers, for questions about a file's
 * layout that its metadata does not answer. */
#include <errno.h>
#include <stdlib.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "stream/stream.h"

/* Step over a compressed data frame piece by piece: the pieces are read
 * (and their layout checked) but never decompressed. */
static int
skip_pieces (struct vb_reader *r, void **buf, uint64_t *cap)
{
  uint64_t next, max, content;
  ssize_t n;

  if (vb_reader_piece_sizes (r, &next, &max) < 0)
    return -1;
  if (max > *cap) {
    void *b = realloc (*buf, max);
    if (!b) {
      vb_set_error_errno (ENOMEM, "piece of %llu bytes",
                          (unsigned long long) max);
      return -1;
    }
    *buf = b;
    *cap = max;
  }
  while ((n = vb_reader_piece (r, *buf, *cap, &content)) > 0)
    ;
  return n < 0 ? -1 : 0;
}

int
vb_stream_count_zero_frames (int fd, const char *name, uint64_t *count)
{
  struct vb_reader *r = vb_reader_open (fd, name);
  CLEANUP_FREE void *buf = NULL;
  uint64_t cap = 0;
  enum vb_comp_method method;
  struct vb_frame f;
  int ret;

  if (!r)
    return -1;
  *count = 0;
  while ((ret = vb_reader_next (r, &f)) == 1) {
    if (f.kind == VB_FRAME_ZERO)
      (*count)++;
    else if (f.kind == VB_FRAME_DATA &&
             (vb_reader_compression (r, &method) ?
              skip_pieces (r, &buf, &cap) : vb_reader_skip (r)) < 0) {
      ret = -1;
      break;
    }
  }
  vb_reader_close (r);
  return ret;
}
