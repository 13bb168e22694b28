/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Whole-file walks over the frame headers, for questions about a file's
 * layout that its metadata does not answer. */
#include "common/error.h"
#include "target/target.h"
#include "stream/stream.h"

int
vb_stream_count_zero_frames (struct vb_rfile *rf, const char *name,
                             uint64_t *count)
{
  struct vb_reader *r = vb_reader_open (rf, name);
  struct vb_frame f;
  int ret;

  if (!r)
    return -1;
  *count = 0;
  while ((ret = vb_reader_next (r, &f)) == 1) {
    if (f.kind == VB_FRAME_ZERO)
      (*count)++;
    else if (f.kind == VB_FRAME_DATA && vb_reader_pass (r, NULL, NULL) < 0) {
      ret = -1;
      break;
    }
  }
  vb_reader_close (r);
  return ret;
}
