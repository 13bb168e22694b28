/* SPDX-License-Identifier: GPL-3.0-or-later */
/* test-client.c: the progress line and the extents parser of the clients. */
#include <string.h>

#include "client/client.h"
#include "client/http.h"
#include "common/test.h"

static void
test_progress (void)
{
  char buf[128];

  vb_progress_format (buf, sizeof buf, 6442450944ull, 6442450944ull, 15.52);
  CHECK (!strcmp (buf, "[ 100.00% ] 6.00 GiB, 15.52 seconds, 395.88 MiB/s"));
  vb_progress_format (buf, sizeof buf, 512, 2048, 0.5);
  CHECK (!strcmp (buf, "[  25.00% ] 512.00 bytes, 0.50 seconds, 1.00 KiB/s"));
  vb_progress_format (buf, sizeof buf, 0, 0, 0);
  CHECK (!strcmp (buf, "[ 100.00% ] 0.00 bytes, 0.00 seconds, 0.00 bytes/s"));
}

static void
test_extents (void)
{
  const char *ok = "[{\"start\":0,\"length\":65536,\"zero\":false,\"hole\":false},"
    "{\"start\":65536,\"length\":4096,\"zero\":true,\"hole\":true}]";
  const char *dirty = "[{\"start\":0,\"length\":4096,\"dirty\":true,\"zero\":false},"
    "{\"start\":4096,\"length\":4096,\"dirty\":false,\"zero\":false}]";
  const char *bad[] = {
    "{}", "[{\"start\":1,\"length\":1}]", "[{\"start\":0,\"length\":0}]",
    "[{\"start\":0,\"length\":10},{\"start\":5,\"length\":10}]",
    "[{\"start\":0,\"length\":-1}]", "[1]", "[{\"start\":0}]", "[",
  };
  struct vb_rext *v;
  size_t n = 0;

  REQUIRE ((v = vb_http_parse_extents (ok, strlen (ok), false, &n)));
  CHECK (n == 2 && !v[0].zero && v[1].zero && v[1].off == 65536
         && v[1].len == 4096 && v[0].dirty && v[1].dirty);
  free (v);
  REQUIRE ((v = vb_http_parse_extents (dirty, strlen (dirty), true, &n)));
  CHECK (n == 2 && v[0].dirty && !v[1].dirty);
  free (v);
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    v = vb_http_parse_extents (bad[i], strlen (bad[i]), false, &n);
    CHECK (v == NULL);
    free (v);
  }
}

int
main (void)
{
  test_progress ();
  test_extents ();
  return vb_test_end ("test-client");
}
