/* SPDX-License-Identifier: GPL-3.0-or-later */
/* fuzz_serve_parse.c: libFuzzer target for virtback serve's request
 * parsers (src/serve/parse.c): Range, Content-Range, the PATCH body and
 * the small header and query values.  The first byte picks the parser;
 * the rest is the untrusted text, as a client would send it (for Range,
 * after the image size).  A parser
 * must refuse or accept, never read past the input, and what it accepts
 * must be consistent (a range inside the image). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/internal.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Range: bytes 1-4 are the image size (so that the edges get explored),
 * the rest is the header. */
static void
check_range (const uint8_t *data, size_t size)
{
  uint64_t img = 0, off = 0, len = 0;
  char *h;

  if (size < 5 || !(h = malloc (size - 4)))
    return;
  for (size_t i = 1; i < 5; i++)
    img = img << 8 | data[i];
  memcpy (h, data + 5, size - 5);
  h[size - 5] = '\0';
  if (vb_srv_parse_range (h, img, &off, &len) == VB_RANGE_OK
      && (len == 0 || off >= img || len > img - off))
    abort ();
  free (h);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct vb_patch p;
  uint64_t v;
  bool b;
  char *s;

  if (size < 1)
    return 0;
  /* The headers reach the parsers as C strings (libmicrohttpd's); the
   * PATCH body as bytes with a length. */
  if (!(s = malloc (size)))
    return 0;
  memcpy (s, data + 1, size - 1);
  s[size - 1] = '\0';
  switch (data[0] % 6) {
  case 0: check_range (data, size); break;
  case 1: vb_srv_parse_content_range (s, &v); break;
  case 2:
    if (vb_srv_parse_patch ((const char *) data + 1, size - 1, &p) == 0
        && p.op != VB_PATCH_ZERO && p.op != VB_PATCH_FLUSH)
      abort ();
    break;
  case 3: vb_srv_parse_flush (s, false, &b); break;
  case 4: vb_srv_parse_block_size (s, &v); break;
  case 5: vb_parse_content_length (s, &v); vb_srv_valid_id (s); break;
  }
  free (s);
  return 0;
}
