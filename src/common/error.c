/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"

#define VB_ERRMAX 1024

static __thread char errbuf[VB_ERRMAX];

void
vb_set_error (const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (errbuf, sizeof errbuf, fmt, ap);
  va_end (ap);
}

void
vb_set_error_errno (int errnum, const char *fmt, ...)
{
  va_list ap;
  size_t n;

  va_start (ap, fmt);
  vsnprintf (errbuf, sizeof errbuf, fmt, ap);
  va_end (ap);
  n = strlen (errbuf);
  snprintf (errbuf + n, sizeof errbuf - n, ": %s", strerror (errnum));
}

void
vb_prefix_error (const char *fmt, ...)
{
  char prefix[VB_ERRMAX], joined[2 * VB_ERRMAX + 2];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (prefix, sizeof prefix, fmt, ap);
  va_end (ap);
  /* Join in a buffer that always fits, then keep what the slot holds. */
  snprintf (joined, sizeof joined, "%s: %s", prefix, errbuf);
  snprintf (errbuf, sizeof errbuf, "%.*s", VB_ERRMAX - 1, joined);
}

const char *
vb_get_error (void)
{
  return errbuf;
}

void
vb_set_error_str (const char *msg)
{
  snprintf (errbuf, sizeof errbuf, "%s", msg ? msg : "");
}
