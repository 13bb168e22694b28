/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Numbers and sizes from option strings. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/parse.h"

/* Digits only, then the rest in *END: strtoull alone takes signs and
 * blanks, which no user means in a size. */
static int
leading_uint (const char *s, uint64_t *v, const char **end)
{
  char *e;

  if (!isdigit ((unsigned char) *s))
    return -1;
  errno = 0;
  *v = strtoull (s, &e, 10);
  if (errno)
    return -1;
  *end = e;
  return 0;
}

int
vb_parse_uint (const char *s, uint64_t max, uint64_t *out)
{
  const char *end;

  if (leading_uint (s, out, &end) < 0 || *end || *out > max) {
    vb_set_error ("'%s' is not a whole number from 0 to %llu", s,
                  (unsigned long long) max);
    return -1;
  }
  return 0;
}

static int
suffix_shift (const char *u)
{
  static const char units[] = "KMGT";
  const char *p = *u ? strchr (units, toupper ((unsigned char) *u)) : NULL;

  if (!*u)
    return 0;
  if (!p || (strcmp (u + 1, "") && strcmp (u + 1, "B") &&
             strcmp (u + 1, "iB")))
    return -1;
  return 10 * (int) (p - units + 1);
}

int
vb_parse_size (const char *s, uint64_t max, uint64_t *out)
{
  const char *end;
  uint64_t v;
  int shift = -1;

  if (leading_uint (s, &v, &end) == 0)
    shift = suffix_shift (end);
  if (shift < 0 || (shift && v > (UINT64_MAX >> shift)) ||
      (v << shift) > max) {
    vb_set_error ("'%s' is not a size up to %llu bytes (a number with an "
                  "optional K, M, G or T)", s, (unsigned long long) max);
    return -1;
  }
  *out = v << shift;
  return 0;
}
