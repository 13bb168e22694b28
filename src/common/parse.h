/* SPDX-License-Identifier: GPL-3.0-or-later */
/* parse.h: numbers and sizes as users write them on a command line (and,
 * later, in a configuration file).
 *
 * Contract: the whole string must be the value: no sign, no blanks, no
 * trailing text.  Sizes take an optional binary suffix, K, M, G or T,
 * optionally followed by "iB" or "B" ("256K", "1M", "1MiB", "4096").
 * Values above MAX are refused.  Errors: -1 with vb_set_error() quoting
 * the string.  Never prints.
 */
#ifndef VB_PARSE_H
#define VB_PARSE_H

#include <stdint.h>

int vb_parse_uint (const char *s, uint64_t max, uint64_t *out);
int vb_parse_size (const char *s, uint64_t max, uint64_t *out);

#endif
