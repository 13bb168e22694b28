/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"

static __thread struct vb_error err;

static void
set (enum vb_err_code code, int errnum, const char *fmt, va_list ap)
{
  vsnprintf (err.msg, sizeof err.msg, fmt, ap);
  err.code = code;
  err.errnum = errnum;
}

void
vb_set_error (const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  set (VB_ERR_GENERIC, 0, fmt, ap);
  va_end (ap);
}

void
vb_set_error_code (enum vb_err_code code, int errnum, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  set (code, errnum, fmt, ap);
  va_end (ap);
}

enum vb_err_code
vb_err_code_of (int errnum)
{
  switch (errnum) {
  case ENOSPC:
  case EDQUOT: return VB_ERR_NOSPC;
  case ENOMEM: return VB_ERR_NOMEM;
  default: return VB_ERR_IO;
  }
}

void
vb_set_error_errno (int errnum, const char *fmt, ...)
{
  va_list ap;
  size_t n;

  va_start (ap, fmt);
  set (vb_err_code_of (errnum), errnum, fmt, ap);
  va_end (ap);
  n = strlen (err.msg);
  snprintf (err.msg + n, sizeof err.msg - n, ": %s", strerror (errnum));
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
  snprintf (joined, sizeof joined, "%s: %s", prefix, err.msg);
  snprintf (err.msg, sizeof err.msg, "%.*s", VB_ERRMAX - 1, joined);
}

const char *
vb_get_error (void)
{
  return err.msg;
}

int
vb_get_errno (void)
{
  return err.errnum;
}

enum vb_err_code
vb_get_error_code (void)
{
  return err.code;
}

void
vb_set_error_str (const char *msg)
{
  snprintf (err.msg, sizeof err.msg, "%s", msg ? msg : "");
  err.code = VB_ERR_GENERIC;
  err.errnum = 0;
}

void
vb_error_save (struct vb_error *e)
{
  *e = err;
}

void
vb_error_restore (const struct vb_error *e)
{
  err = *e;
}
