/* SPDX-License-Identifier: GPL-3.0-or-later */
/* test-job: job IDs, the records and the job chain files, in a directory
 * of the test's own. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backupset/backupset.h"
#include "common/fsutil.h"
#include "common/test.h"
#include "job/internal.h"

static void
test_ids (void)
{
  char *a = vb_job_random_hex (16), *b = vb_job_random_hex (16);

  REQUIRE (a && b);
  CHECK (strlen (a) == 32 && vb_job_valid_id (a));
  CHECK (strcmp (a, b) != 0);
  CHECK (vb_job_random_hex (33) == NULL);
  CHECK (!vb_job_valid_id ("../x"));
  CHECK (!vb_job_valid_id ("../00ff"));
  CHECK (!vb_job_valid_id ("ABCD"));
  CHECK (!vb_job_valid_id (""));
  CHECK (!vb_job_valid_id (NULL));
  CHECK (vb_job_valid_id ("0123456789abcdef"));
  free (a);
  free (b);
}

static void
test_records (const char *top, const char *run)
{
  struct json_object *rec = json_object_new_object (), *back;
  char path[4096], **ids;
  struct stat st;

  json_object_object_add (rec, "id", json_object_new_string ("00ff"));
  json_object_object_add (rec, "expires", json_object_new_int64 (42));
  CHECK (vb_jrec_save (rec) == 0);
  snprintf (path, sizeof path, "%s/00ff.json", run);
  CHECK (stat (path, &st) == 0 && (st.st_mode & 0777) == 0600);
  snprintf (path, sizeof path, "%s/junk.json", run);
  CHECK (vb_write_file_atomic (run, "junk.json", "{}", 2, 0600) == 0);
  REQUIRE ((back = vb_jrec_load ("00ff")) != NULL);
  CHECK (vb_jint (back, "expires") == 42);
  CHECK (!strcmp (vb_jstr (back, "id"), "00ff"));
  CHECK (vb_jstr (back, "nothing") == NULL);
  json_object_put (back);
  /* Only hex IDs are records: a name that is not one is never a path. */
  REQUIRE ((ids = vb_jrec_ids ()) != NULL);
  CHECK (ids[0] && !strcmp (ids[0], "00ff") && !ids[1]);
  vb_strv_free (ids);
  /* A record outside the directory is out of reach. */
  CHECK (vb_write_file_atomic (top, "00ff.json", "{}", 2, 0600) == 0);
  CHECK_ERR (vb_jrec_load ("../00ff") == NULL, "there is no job ../00ff");
  snprintf (path, sizeof path, "%s/00ff.json", top);
  unlink (path);
  snprintf (path, sizeof path, "%s/junk.json", run);
  CHECK (vb_jrec_remove ("00ff") == 0);
  CHECK_ERR (vb_jrec_load ("00ff") == NULL, "there is no job 00ff");
  CHECK (vb_jrec_remove ("00ff") == 0);
  unlink (path);
  json_object_put (rec);
}

static void
test_chain (const char *chain)
{
  struct json_object *c = vb_jchain_load ("u-1", "virtback"), *pt;
  char path[4096];

  REQUIRE (c && json_object_array_length (c) == 0);
  pt = json_object_new_object ();
  json_object_object_add (pt, "name", json_object_new_string ("virtback.0"));
  json_object_object_add (pt, "xml", json_object_new_string ("<x/>"));
  json_object_array_add (c, pt);
  CHECK (vb_jchain_save ("u-1", "virtback", c) == 0);
  json_object_put (c);
  REQUIRE ((c = vb_jchain_load ("u-1", "virtback")) != NULL);
  CHECK (json_object_array_length (c) == 1 &&
         !strcmp (vb_jstr (json_object_array_get_idx (c, 0), "name"),
                  "virtback.0"));
  json_object_put (c);
  CHECK (vb_jchain_load ("../u", "virtback") == NULL);
  CHECK (vb_jchain_load ("u-1", "a/b") == NULL);
  snprintf (path, sizeof path, "%s/u-1.virtback.json", chain);
  CHECK (vb_write_file_atomic (chain, "u-1.virtback.json", "[1]", 3,
                               0600) == 0);
  CHECK_ERR (vb_jchain_load ("u-1", "virtback") == NULL, "not a JSON object");
  unlink (path);
}

int
main (void)
{
  char tmpl[] = "/tmp/test-job.XXXXXX", run[256], chain[256];

  REQUIRE (mkdtemp (tmpl));
  snprintf (run, sizeof run, "%s/run", tmpl);
  snprintf (chain, sizeof chain, "%s/chain", tmpl);
  vb_job_set_dirs (run, chain);
  test_ids ();
  test_records (tmpl, run);
  test_chain (chain);
  rmdir (run);
  rmdir (chain);
  rmdir (tmpl);
  return vb_test_end ("test-job");
}
