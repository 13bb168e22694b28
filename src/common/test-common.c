/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Unit tests for common/: error convention and durable file helpers. */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "common/parse.h"
#include "common/clock.h"
#include "common/text.h"

static void
test_error (void)
{
  vb_set_error ("read at %d", 7);
  vb_prefix_error ("sda");
  assert (strcmp (vb_get_error (), "sda: read at 7") == 0);
  vb_set_error_errno (2, "open x");
  assert (strcmp (vb_get_error (), "open x: No such file or directory") == 0);
  assert (vb_get_errno () == 2 && vb_get_error_code () == VB_ERR_IO);
  /* Callers decide by code: it survives context and a hand-over. */
  vb_set_error_errno (ENOSPC, "write f");
  vb_prefix_error ("disk sda");
  assert (vb_get_error_code () == VB_ERR_NOSPC && vb_get_errno () == ENOSPC);
  struct vb_error e;
  vb_error_save (&e);
  vb_set_error ("other");
  assert (vb_get_error_code () == VB_ERR_GENERIC && vb_get_errno () == 0);
  vb_error_restore (&e);
  assert (vb_get_error_code () == VB_ERR_NOSPC);
  assert (strcmp (vb_get_error (), "disk sda: write f: No space left on device") == 0);
  vb_set_error_code (VB_ERR_NBD_READ, EIO, "sda: read at %d", 7);
  assert (vb_get_error_code () == VB_ERR_NBD_READ && vb_get_errno () == EIO);
  assert (vb_err_code_of (EDQUOT) == VB_ERR_NOSPC);
}

static void
test_atomic (void)
{
  char dir[] = "/tmp/vbtest.XXXXXX";
  struct stat st;
  size_t len;

  assert (mkdtemp (dir));
  assert (!strcmp (vb_path_base (dir), dir + 5));
  assert (!strcmp (vb_path_base ("ssh"), "ssh"));
  assert (!strcmp (vb_path_base ("/usr/bin/"), ""));
  assert (vb_dir_is_empty (dir) == 1);
  assert (vb_write_file_atomic (dir, "f", "hello", 5, 0600) == 0);
  assert (vb_dir_is_empty (dir) == 0);
  CLEANUP_FREE char *p = vb_path_join (dir, "f");
  CLEANUP_FREE char *tmp = vb_path_join (dir, "f.tmp");
  assert (stat (p, &st) == 0 && (st.st_mode & 0777) == 0600);
  assert (access (tmp, F_OK) < 0);
  CLEANUP_FREE char *c = vb_read_file (p, &len);
  assert (c && len == 5 && memcmp (c, "hello", 5) == 0);
  assert (vb_write_file_atomic ("/nonexistent/dir", "f", "x", 1, 0600) == -1);
  assert (strstr (vb_get_error (), "/nonexistent/dir"));
  unlink (p);
  CLEANUP_FREE char *sub = vb_path_join (dir, "a/b/c");
  assert (vb_mkdir_p (sub, 0700) == 0);
  assert (stat (sub, &st) == 0 && S_ISDIR (st.st_mode));
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
  assert (system (cmd) == 0);
}

static void
test_parse (void)
{
  uint64_t v;

  assert (vb_parse_size ("1M", UINT64_MAX, &v) == 0 && v == 1048576);
  assert (vb_parse_size ("256KiB", UINT64_MAX, &v) == 0 && v == 262144);
  assert (vb_parse_size ("2g", UINT64_MAX, &v) == 0 && v == 2ull << 30);
  assert (vb_parse_size ("4096", UINT64_MAX, &v) == 0 && v == 4096);
  assert (vb_parse_size ("1TB", UINT64_MAX, &v) == 0 && v == 1ull << 40);
  assert (vb_parse_size ("1X", UINT64_MAX, &v) < 0);
  assert (strstr (vb_get_error (), "'1X'"));
  assert (vb_parse_size ("1Mx", UINT64_MAX, &v) < 0);
  assert (vb_parse_size ("-1", UINT64_MAX, &v) < 0);
  assert (vb_parse_size (" 1", UINT64_MAX, &v) < 0);
  assert (vb_parse_size ("", UINT64_MAX, &v) < 0);
  assert (vb_parse_size ("33M", 32u << 20, &v) < 0);
  assert (vb_parse_size ("16777216T", UINT64_MAX, &v) < 0);   /* 2^64 */
  assert (vb_parse_uint ("64", 64, &v) == 0 && v == 64);
  assert (vb_parse_uint ("65", 64, &v) < 0);
  assert (vb_parse_uint ("+1", 64, &v) < 0);
}

static void
test_text (void)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream (&buf, &len);
  CLEANUP_FREE char *s = vb_xasprintf ("%s.%d", "a", 7);

  assert (s && strcmp (s, "a.7") == 0);
  /* Golden bytes from python3 -c 'print(json.dumps(...))'. */
  assert (f && vb_put_py_json_string (f, "a\"b\\c\n\x7f\x01 \xc3\xa9 "
                                      "\xf0\x9f\x98\x80\b\f\r\t") == 0);
  assert (vb_put_py_json_string (f, NULL) == 0);
  assert (vb_put_py_json_string (f, "\xc0\x80") == -1);  /* overlong */
  assert (vb_put_py_json_string (f, "\xed\xa0\x80") == -1);  /* surrogate */
  assert (vb_put_py_json_string (f, "\xe2\x82") == -1);  /* cut short */
  fclose (f);
  assert (strcmp (buf, "\"a\\\"b\\\\c\\n\\u007f\\u0001 \\u00e9 "
                  "\\ud83d\\ude00\\b\\f\\r\\t\"\"\"\"\"\"") == 0);
  free (buf);

  char h[32];
  vb_human_size (h, sizeof h, 1023);
  assert (strcmp (h, "1023.00 B") == 0);
  vb_human_size (h, sizeof h, 3.0 * 1024 * 1024 * 1024);
  assert (strcmp (h, "3.00 GiB") == 0);
  vb_human_size (h, sizeof h, 5000.0 * 1024 * 1024 * 1024 * 1024);
  assert (strcmp (h, "5000.00 TiB") == 0);
}

static void
test_clock (void)
{
  double a = vb_mono (), b = vb_mono ();
  struct timespec now, d;

  assert (a > 0 && b >= a);
  /* 1.95 s ahead: the seconds carry over and the nanoseconds stay in range */
  clock_gettime (CLOCK_REALTIME, &now);
  vb_cond_deadline (&d, 1950);
  assert (d.tv_nsec >= 0 && d.tv_nsec < 1000000000);
  double ahead = (d.tv_sec - now.tv_sec) + (d.tv_nsec - now.tv_nsec) / 1e9;
  assert (ahead > 1.9 && ahead < 2.5);
}

int
main (void)
{
  test_error ();
  test_parse ();
  test_atomic ();
  test_text ();
  test_clock ();
  printf ("test-common: ok\n");
  return 0;
}
