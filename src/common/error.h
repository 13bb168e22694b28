/* SPDX-License-Identifier: GPL-3.0-or-later */
/* error.h: the one error convention of virtback.
 *
 * Contract: a function that fails returns -1 (or NULL) after calling
 * vb_set_error() with a message that carries its context ("sda: read at
 * 0x1000: Input/output error").  Callers that add context use
 * vb_prefix_error().  Only src/cli prints the message (vb_get_error()) and
 * exits.  The message is kept per thread, so worker threads report their own.
 */
#ifndef VB_ERROR_H
#define VB_ERROR_H

#include <stdarg.h>

void vb_set_error (const char *fmt, ...) __attribute__((format (printf, 1, 2)));
/* Like vb_set_error, then appends ": strerror(errnum)". */
void vb_set_error_errno (int errnum, const char *fmt, ...)
  __attribute__((format (printf, 2, 3)));
/* Prepends "<context>: " to the current message. */
void vb_prefix_error (const char *fmt, ...) __attribute__((format (printf, 1, 2)));
/* The last message of this thread; "" if none.  Valid until the next set. */
const char *vb_get_error (void);
/* Copy another thread's message into this thread's slot. */
void vb_set_error_str (const char *msg);

#endif
