/* SPDX-License-Identifier: GPL-3.0-or-later */
/* frame.c: the 40-byte frame header "kind start length\r\n".
 *
 * Parsing accepts only what the peer writes (four-letter kind, 16
 * lower-case hex digits, single spaces, CR LF), so any bit flip in a header
 * is reported instead of being read as a plausible offset. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "stream/stream.h"

static const char *const kind_names[] = {
  [VB_FRAME_META] = "meta", [VB_FRAME_DATA] = "data", [VB_FRAME_ZERO] = "zero",
  [VB_FRAME_STOP] = "stop", [VB_FRAME_COMP] = "comp",
};
#define NKINDS (sizeof kind_names / sizeof kind_names[0])

const char *
vb_frame_kind_name (enum vb_frame_kind kind)
{
  if ((size_t) kind >= NKINDS)
    return "unknown";
  return kind_names[kind];
}

void
vb_frame_format (char out[VB_FRAME_LEN], enum vb_frame_kind kind,
                 uint64_t start, uint64_t length)
{
  char tmp[VB_FRAME_LEN + 1];

  snprintf (tmp, sizeof tmp, "%.4s %016" PRIx64 " %016" PRIx64 "\r\n",
            vb_frame_kind_name (kind), start, length);
  memcpy (out, tmp, VB_FRAME_LEN);
}

/* 16 lower-case hex digits -> value; -1 on any other byte. */
static int
parse_hex16 (const char *p, uint64_t *val)
{
  uint64_t v = 0;

  for (int i = 0; i < 16; i++) {
    char c = p[i];
    unsigned d;

    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else
      return -1;
    v = (v << 4) | d;
  }
  *val = v;
  return 0;
}

int
vb_frame_parse (const char in[VB_FRAME_LEN], enum vb_frame_kind *kind,
                uint64_t *start, uint64_t *length)
{
  size_t k;

  for (k = 0; k < NKINDS; k++)
    if (memcmp (in, kind_names[k], 4) == 0)
      break;
  if (k == NKINDS) {
    vb_set_error ("bad frame kind");
    return -1;
  }
  if (in[4] != ' ' || in[21] != ' ') {
    vb_set_error ("bad frame header: missing space separator");
    return -1;
  }
  if (in[38] != '\r' || in[39] != '\n') {
    vb_set_error ("bad frame header: missing CR LF");
    return -1;
  }
  if (parse_hex16 (in + 5, start) == -1 || parse_hex16 (in + 22, length) == -1) {
    vb_set_error ("bad frame header: start and length must be 16 lower-case "
                  "hex digits");
    return -1;
  }
  *kind = (enum vb_frame_kind) k;
  return 0;
}
