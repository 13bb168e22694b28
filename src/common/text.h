/* SPDX-License-Identifier: GPL-3.0-or-later */
/* text.h: formatting text the project's way.
 *
 * Contract: vb_xasprintf is asprintf whose failure is an error
 * ("out of memory") like every other; vb_put_py_json_string writes a JSON
 * string literal byte for byte as Python's json.dumps (ensure_ascii=True)
 * does, which is how virtnbdbackup writes the metadata and the .cpt file.
 * vb_human_size writes BYTES in binary units with two decimals ("3.00 GiB"),
 * as the progress and summary lines show sizes.
 * Errors: NULL / -1 with vb_set_error(). */
#ifndef VB_TEXT_H
#define VB_TEXT_H

#include <stdio.h>

char *vb_xasprintf (const char *fmt, ...)
  __attribute__((format (printf, 1, 2)));

/* S (NULL reads as "") as a quoted JSON string: short escapes for \" \\
 * \b \f \n \r \t, lower-case \uXXXX for other controls, DEL and non-ASCII
 * (a surrogate pair above the BMP).  -1 if S is not strict UTF-8 (no
 * overlongs, surrogates or values past U+10FFFF); OUT then holds part of
 * it. */
int vb_put_py_json_string (FILE *out, const char *s);

void vb_human_size (char *buf, size_t len, double bytes);

#endif
