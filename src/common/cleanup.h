/* SPDX-License-Identifier: GPL-3.0-or-later */
/* cleanup.h: __attribute__((cleanup)) helpers for locals, as in nbdkit.
 * A local declared CLEANUP_FREE is freed when it goes out of scope; hand
 * ownership on by setting the variable to NULL (or use STEAL). */
#ifndef VB_CLEANUP_H
#define VB_CLEANUP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void vb_cleanup_free (void *p) { free (*(void **) p); }
static inline void vb_cleanup_fclose (FILE **fp) { if (*fp) fclose (*fp); }
static inline void vb_cleanup_close (int *fd) { if (*fd >= 0) close (*fd); }
static inline void
vb_cleanup_strv (char ***p)
{
  if (*p) {
    for (char **s = *p; *s; s++)
      free (*s);
    free (*p);
  }
}

#define CLEANUP_FREE __attribute__((cleanup (vb_cleanup_free)))
#define CLEANUP_FCLOSE __attribute__((cleanup (vb_cleanup_fclose)))
#define CLEANUP_CLOSE __attribute__((cleanup (vb_cleanup_close)))
#define CLEANUP_STRV __attribute__((cleanup (vb_cleanup_strv)))

/* Take ownership of a cleanup-managed pointer. */
#define STEAL(p) ({ __typeof__ (p) _t = (p); (p) = NULL; _t; })

#endif
