/* SPDX-License-Identifier: GPL-3.0-or-later */
/* clock.c: see clock.h. */
#include <time.h>

#include "common/clock.h"

double
vb_mono (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}
