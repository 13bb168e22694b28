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
  char prefix[VB_ERRMAX], old[VB_ERRMAX];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (prefix, sizeof prefix, fmt, ap);
  va_end (ap);
  memcpy (old, errbuf, sizeof old);
  snprintf (errbuf, sizeof errbuf, "%s: %s", prefix, old);
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
