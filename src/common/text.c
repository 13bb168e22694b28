/* SPDX-License-Identifier: GPL-3.0-or-later */
/* text.c: see text.h. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/text.h"

char *
vb_xasprintf (const char *fmt, ...)
{
  va_list ap;
  char *s;
  int r;

  va_start (ap, fmt);
  r = vasprintf (&s, fmt, ap);
  va_end (ap);
  if (r < 0) {
    vb_set_error ("out of memory");
    return NULL;
  }
  return s;
}

/* Decode one UTF-8 sequence at S (N bytes left); returns its length or -1. */
static int
utf8_decode (const unsigned char *s, size_t n, uint32_t *cp)
{
  int len;
  uint32_t c, min;

  if (s[0] < 0x80) { *cp = s[0]; return 1; }
  if ((s[0] & 0xe0) == 0xc0) { len = 2; c = s[0] & 0x1f; min = 0x80; }
  else if ((s[0] & 0xf0) == 0xe0) { len = 3; c = s[0] & 0x0f; min = 0x800; }
  else if ((s[0] & 0xf8) == 0xf0) { len = 4; c = s[0] & 0x07; min = 0x10000; }
  else return -1;
  if ((size_t) len > n)
    return -1;
  for (int i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return -1;
    c = (c << 6) | (s[i] & 0x3f);
  }
  if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
    return -1;
  *cp = c;
  return len;
}

static void
escape_cp (FILE *fp, uint32_t c)
{
  switch (c) {
  case '"': fputs ("\\\"", fp); return;
  case '\\': fputs ("\\\\", fp); return;
  case '\n': fputs ("\\n", fp); return;
  case '\r': fputs ("\\r", fp); return;
  case '\t': fputs ("\\t", fp); return;
  case '\b': fputs ("\\b", fp); return;
  case '\f': fputs ("\\f", fp); return;
  }
  if (c >= 0x20 && c <= 0x7e)
    fputc ((int) c, fp);
  else if (c < 0x10000)
    fprintf (fp, "\\u%04x", (unsigned) c);
  else {
    c -= 0x10000;
    fprintf (fp, "\\u%04x\\u%04x", (unsigned) (0xd800 | (c >> 10)),
             (unsigned) (0xdc00 | (c & 0x3ff)));
  }
}

int
vb_put_py_json_string (FILE *out, const char *s)
{
  const unsigned char *p = (const unsigned char *) (s ? s : "");
  size_t n = strlen ((const char *) p);

  fputc ('"', out);
  while (n > 0) {
    uint32_t c;
    int len = utf8_decode (p, n, &c);

    if (len == -1) {
      vb_set_error ("string is not valid UTF-8");
      return -1;
    }
    escape_cp (out, c);
    p += len;
    n -= len;
  }
  fputc ('"', out);
  return 0;
}

void
vb_human_size (char *buf, size_t len, double bytes)
{
  static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
  int i = 0;

  while (bytes >= 1024 && i < 4) {
    bytes /= 1024;
    i++;
  }
  snprintf (buf, len, "%.2f %s", bytes, unit[i]);
}
