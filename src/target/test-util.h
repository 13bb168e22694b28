/* SPDX-License-Identifier: GPL-3.0-or-later */
/* test-util.h: what unit tests that read backup directories share: a
 * directory target per call, all closed at exit (so tests can open them
 * inline and LeakSanitizer still sees everything freed). */
#ifndef VB_TARGET_TEST_UTIL_H
#define VB_TARGET_TEST_UTIL_H

#include <stdlib.h>

#include "target/target.h"

static struct vb_target **test_tgts;
static size_t test_ntgts;

static void
test_close_tgts (void)
{
  for (size_t i = 0; i < test_ntgts; i++)
    vb_target_close (test_tgts[i]);
  free (test_tgts);
}

/* A directory target on DIR, closed at exit. */
static inline struct vb_target *
T (const char *dir)
{
  struct vb_target *t = vb_target_dir_open (dir, NULL);
  struct vb_target **v = realloc (test_tgts, (test_ntgts + 1) * sizeof *v);

  if (!v)
    abort ();
  if (!test_ntgts)
    atexit (test_close_tgts);
  test_tgts = v;
  if (t)
    test_tgts[test_ntgts++] = t;
  return t;
}

#endif
