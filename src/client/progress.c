/* SPDX-License-Identifier: GPL-3.0-or-later */
/* progress.c: the progress line of the clients (client.h), in the shape
 * oVirt's client prints it. */
#include <stdio.h>

#include "client/client.h"

static void
human (char *buf, size_t len, double v, const char *suffix)
{
  static const char *const units[] = { "bytes", "KiB", "MiB", "GiB", "TiB",
                                       "PiB" };
  size_t u = 0;

  while (v >= 1024 && u < sizeof units / sizeof *units - 1)
    v /= 1024, u++;
  snprintf (buf, len, "%.2f %s%s", v, units[u], suffix);
}

void
vb_progress_format (char *buf, size_t len, uint64_t done, uint64_t total,
                    double secs)
{
  char size[32], rate[32];
  double pct = total ? 100.0 * (double) done / (double) total : 100.0;

  human (size, sizeof size, (double) done, "");
  human (rate, sizeof rate, secs > 0 ? (double) done / secs : 0, "/s");
  snprintf (buf, len, "[ %6.2f%% ] %s, %.2f seconds, %s", pct, size, secs,
            rate);
}
