/* SPDX-License-Identifier: GPL-3.0-or-later */
/* error.h: the one error convention of virtback.
 *
 * Contract: a function that fails returns -1 (or NULL) after calling
 * vb_set_error() with a message that carries its context ("sda: read at
 * 0x1000: Input/output error").  Callers that add context use
 * vb_prefix_error(), which keeps the code and errno.  Beside the message
 * an error carries the errno that caused it (0 if none) and a small code,
 * so that callers decide by code, never by the message's text.  Only
 * src/cli prints the message (vb_get_error()) and exits.  The error is
 * kept per thread; struct vb_error carries one to another thread whole.
 */
#ifndef VB_ERROR_H
#define VB_ERROR_H

#include <stdarg.h>

enum vb_err_code {
  VB_ERR_GENERIC = 0,          /* nothing a caller decides on */
  VB_ERR_NOMEM,
  VB_ERR_IO,                   /* a system call failed (see errno) */
  VB_ERR_NOSPC,                /* ENOSPC or EDQUOT: the target is full */
  VB_ERR_CANCELLED,            /* a signal asked the run to stop */
  VB_ERR_NBD_READ,             /* a read from an NBD export failed */
  VB_ERR_BITMAP,               /* a checkpoint's bitmap is gone or bad */
};

#define VB_ERRMAX 1024

struct vb_error {
  char msg[VB_ERRMAX];
  int errnum;
  enum vb_err_code code;
};

void vb_set_error (const char *fmt, ...) __attribute__((format (printf, 1, 2)));
/* Like vb_set_error, then appends ": strerror(errnum)"; the code follows
 * from ERRNUM (VB_ERR_NOSPC, VB_ERR_NOMEM, else VB_ERR_IO). */
void vb_set_error_errno (int errnum, const char *fmt, ...)
  __attribute__((format (printf, 2, 3)));
/* The code an errno stands for (VB_ERR_NOSPC for ENOSPC and EDQUOT...). */
enum vb_err_code vb_err_code_of (int errnum);
/* An error with CODE and ERRNUM (0: none) and this message. */
void vb_set_error_code (enum vb_err_code code, int errnum, const char *fmt, ...)
  __attribute__((format (printf, 3, 4)));
/* Prepends "<context>: " to the current message. */
void vb_prefix_error (const char *fmt, ...) __attribute__((format (printf, 1, 2)));
/* The last message of this thread; "" if none.  Valid until the next set. */
const char *vb_get_error (void);
int vb_get_errno (void);
enum vb_err_code vb_get_error_code (void);
/* Copy another thread's message into this thread's slot (generic code). */
void vb_set_error_str (const char *msg);
/* The whole error of this thread, to hand to another thread. */
void vb_error_save (struct vb_error *e);
void vb_error_restore (const struct vb_error *e);

#endif
