/* SPDX-License-Identifier: GPL-3.0-or-later */
/* test-util.h: what the stream unit tests share (test-stream.c,
 * test-reader.c) beyond common/test.h: metadata to write. */
#ifndef VB_STREAM_TEST_UTIL_H
#define VB_STREAM_TEST_UTIL_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/test.h"
#include "stream/stream.h"


static inline void
fill_meta (struct vb_meta *m, const char *disk, bool compressed)
{
  memset (m, 0, sizeof *m);
  m->virtual_size = 10737418240ULL;
  m->data_size = 1048576;
  m->date = strdup ("2026-11-22T01:31:23.238748");
  m->disk_name = strdup (disk);
  m->disk_format = strdup ("qcow2");
  m->checkpoint_name = strdup ("virtnbdbackup.3");
  m->parent_checkpoint = strdup ("virtnbdbackup.2");
  m->compressed = compressed;
  m->compression_level = 2;
  m->compression_method = strdup ("lz4");
  m->incremental = true;
  m->stream_version = 2;
}

#endif
