/* SPDX-License-Identifier: GPL-3.0-or-later */
/* test-chain: the chain of a backup directory (backupset/chain.c) on
 * directories of small synthetic data files: order from the links (never
 * from names or times), gaps, duplicates, reorderings, .cpt cross-checks,
 * differentials and restore point selection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backupset/chain.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "target/target.h"
#include "common/fsutil.h"
#include "common/test.h"
#include "stream/stream.h"

#include "target/test-util.h"

static char dir[] = "/tmp/test-chain.XXXXXX";

/* An empty data file: meta frame, stop frame. */
/* vm.cpt as a backup writes it (vb_cpt_format's bytes). */
static int
write_cpt (char *const *names)
{
  CLEANUP_FREE char *text = vb_cpt_format (names);

  return text ? vb_write_file_atomic (dir, "vm.cpt", text, strlen (text),
                                      0600) : -1;
}

static void
put (const char *name, const char *disk, const char *cpt, const char *parent,
     uint64_t size)
{
  struct vb_meta m = {
    .virtual_size = size, .date = "2026-11-22T01:31:23.238748",
    .disk_name = (char *) disk, .disk_format = "qcow2",
    .checkpoint_name = (char *) cpt, .parent_checkpoint = (char *) parent,
    .compression_method = "lz4", .incremental = *parent != '\0',
    .stream_version = 2,
  };
  size_t len;
  CLEANUP_FREE char *json = vb_meta_to_json (&m, &len);
  CLEANUP_FREE char *buf = malloc (len + 2 * VB_FRAME_LEN + 2);

  REQUIRE (json && buf);
  vb_frame_format (buf, VB_FRAME_META, 0, len);
  memcpy (buf + VB_FRAME_LEN, json, len);
  memcpy (buf + VB_FRAME_LEN + len, "\r\n", 2);
  vb_frame_format (buf + VB_FRAME_LEN + len + 2, VB_FRAME_STOP, 0, 0);
  REQUIRE (vb_write_file_atomic (dir, name, buf, len + 2 * VB_FRAME_LEN + 2,
                               0600) == 0);
}

static void
clean (void)
{
  CLEANUP_FREE char *cmd = NULL;
  REQUIRE (asprintf (&cmd, "rm -rf %s/*", dir) > 0);
  REQUIRE (system (cmd) == 0);
}

static void
chain3 (void)
{
  clean ();
  put ("sda.full.data", "sda", "p.0", "", 1 << 20);
  put ("sda.inc.p.1.data", "sda", "p.1", "p.0", 1 << 20);
  put ("sda.inc.p.2.data", "sda", "p.2", "p.1", 2 << 20);
}

static bool
has_problem (const struct vb_chain *c, const char *needle)
{
  for (size_t i = 0; i < c->nproblems; i++)
    if (strstr (c->problems[i].text, needle))
      return true;
  return false;
}

static void
test_order_and_select (void)
{
  struct vb_chain *c;
  const struct vb_chain_disk *d;
  struct vb_chain_file **v;

  chain3 ();
  put ("sda.inc.p.3.data", "sda", "p.3", "p.2", 2 << 20);
  REQUIRE (write_cpt ((char *[]) { "p.0", "p.1", "p.2", "p.3", NULL }) == 0);
  put ("sda.diff.1700000000.data", "sda", "p.4", "p.3", 2 << 20);
  put ("sda.diff.1600000000.data", "sda", "p.4", "p.3", 2 << 20);
  put ("sda.diff.1500000000.data", "sda", "p.2", "p.1", 2 << 20);
  REQUIRE (vb_write_file_atomic (dir, "sda.inc.p.4.data.partial", "x", 1, 0600) == 0);
  c = vb_chain_scan (T (dir));
  REQUIRE (c);
  REQUIRE (c->nproblems == 0);
  REQUIRE (strcmp (c->domain, "vm") == 0);
  REQUIRE (c->partials && strcmp (c->partials[0], "sda.inc.p.4.data.partial") == 0);
  d = vb_chain_find_disk (c, "sda");
  REQUIRE (d && !d->broken && d->nfiles == 4 && d->ndiffs == 3);
  REQUIRE (strcmp (d->files[0]->name, "sda.full.data") == 0);
  REQUIRE (strcmp (d->files[3]->name, "sda.inc.p.3.data") == 0);
  REQUIRE (strcmp (d->diffs[0]->ident, "1500000000") == 0);

  v = vb_chain_select (c, d, NULL);   /* newest: chain + newest diff of p.3 */
  REQUIRE (v && v[4] && !v[5]);
  REQUIRE (strcmp (v[4]->name, "sda.diff.1700000000.data") == 0);
  free (v);
  v = vb_chain_select (c, d, "p.1");
  REQUIRE (v && v[1] && !v[2] && strcmp (v[1]->meta.checkpoint_name, "p.1") == 0);
  free (v);
  v = vb_chain_select (c, d, "1500000000");   /* diff relative to p.1 */
  REQUIRE (v && v[2] && !v[3] && strcmp (v[2]->ident, "1500000000") == 0);
  free (v);
  REQUIRE (vb_chain_select (c, d, "p.9") == NULL);
  REQUIRE (strstr (vb_get_error (), "p.9"));

  v = vb_chain_sequence (c, (char *[]) { "sda.full.data", "sda.inc.p.2.data", NULL });
  REQUIRE (v == NULL && strstr (vb_get_error (), "cannot follow"));
  v = vb_chain_sequence (c, (char *[]) { "sda.full.data", "sda.inc.p.1.data", NULL });
  REQUIRE (v && v[1] && !v[2]);
  free (v);
  vb_chain_free (c);
}

static void
test_gap_dup_reorder (void)
{
  struct vb_chain *c;

  chain3 ();
  {
    CLEANUP_FREE char *p = vb_path_join (dir, "sda.inc.p.1.data");
    REQUIRE (unlink (p) == 0);
  }
  c = vb_chain_scan (T (dir));
  REQUIRE (c && vb_chain_find_disk (c, "sda")->broken);
  REQUIRE (has_problem (c, "sda.inc.p.2.data (metadata at offset 40): its parent "
                      "checkpoint 'p.1' is not in the chain"));
  /* The point before the gap needs none of the files after it. */
  {
    const struct vb_chain_disk *d = vb_chain_find_disk (c, "sda");
    CLEANUP_FREE struct vb_chain_file **v = vb_chain_select (c, d, "p.0");
    CLEANUP_FREE char *later = v ? vb_chain_later_problems (c, d, v) : NULL;

    REQUIRE (v && v[0] && !v[1]);
    REQUIRE (later && strstr (later, "sda.inc.p.2.data"));
    REQUIRE (vb_chain_select (c, d, "p.2") == NULL &&
             strstr (vb_get_error (), "not restorable to p.2") &&
             strstr (vb_get_error (), "sda.inc.p.2.data"));
    REQUIRE (vb_chain_select (c, d, NULL) == NULL);
  }
  vb_chain_free (c);

  chain3 ();
  put ("sda.inc.p.1b.data", "sda", "p.1b", "p.0", 1 << 20);
  c = vb_chain_scan (T (dir));
  REQUIRE (c && has_problem (c, "both follow checkpoint 'p.0'"));
  {
    const struct vb_chain_disk *d = vb_chain_find_disk (c, "sda");
    CLEANUP_FREE struct vb_chain_file **v = vb_chain_select (c, d, "p.0");

    REQUIRE (v && !v[1]);
    REQUIRE (vb_chain_select (c, d, "p.1") == NULL);
  }
  vb_chain_free (c);

  chain3 ();     /* contents of p.1 and p.2 swapped under each other's name */
  put ("sda.inc.p.1.data", "sda", "p.2", "p.1", 1 << 20);
  put ("sda.inc.p.2.data", "sda", "p.1", "p.0", 1 << 20);
  c = vb_chain_scan (T (dir));
  REQUIRE (c && has_problem (c, "sda.inc.p.1.data (metadata at offset 40): the "
                           "file name says checkpoint 'p.1' but the metadata "
                           "says 'p.2'"));
  vb_chain_free (c);

  chain3 ();
  REQUIRE (write_cpt ((char *[]) { "p.0", "p.2", "p.1", NULL }) == 0);
  c = vb_chain_scan (T (dir));
  REQUIRE (c && has_problem (c, "sda.inc.p.1.data (metadata at offset 40): ends "
                           "at checkpoint 'p.1' but vm.cpt lists 'p.2'"));
  vb_chain_free (c);

  chain3 ();     /* the newest inc is gone: only the .cpt can tell */
  REQUIRE (write_cpt ((char *[]) { "p.0", "p.1", "p.2", "p.3", NULL }) == 0);
  c = vb_chain_scan (T (dir));
  REQUIRE (c && has_problem (c, "missing sda.inc.p.3.data"));
  {
    const struct vb_chain_disk *d = vb_chain_find_disk (c, "sda");
    CLEANUP_FREE struct vb_chain_file **v = vb_chain_select (c, d, "p.2");

    REQUIRE (v && v[2] && !v[3]);
    REQUIRE (vb_chain_select (c, d, NULL) == NULL &&
             strstr (vb_get_error (), "missing sda.inc.p.3.data"));
    REQUIRE (vb_chain_select (c, d, "p.3") == NULL &&
             strstr (vb_get_error (), "missing sda.inc.p.3.data"));
  }
  vb_chain_free (c);
}

static void
test_disks_and_bad_files (void)
{
  struct vb_chain *c;

  chain3 ();
  put ("sdb.full.data", "sdb", "p.0", "", 1 << 20);
  put ("sdb.copy.data", "sdb", "p.0", "", 1 << 20);
  put ("sdc.full.data", "sdx", "p.0", "", 1 << 20);
  REQUIRE (vb_write_file_atomic (dir, "sdd.full.data", "meta 00", 7, 0600) == 0);
  c = vb_chain_scan (T (dir));
  REQUIRE (c && c->ndisks == 4);
  REQUIRE (!vb_chain_find_disk (c, "sda")->broken);
  REQUIRE (vb_chain_find_disk (c, "sdb")->broken);
  REQUIRE (has_problem (c, "sdb.copy.data and sdb.full.data: two full or copy"));
  REQUIRE (has_problem (c, "sdc.full.data (metadata at offset 40): diskName is 'sdx'"));
  REQUIRE (has_problem (c, "sdd.full.data: unreadable metadata"));
  REQUIRE (vb_chain_find_disk (c, "sdd")->broken);
  vb_chain_free (c);
  REQUIRE (vb_chain_scan (T ("/nonexistent/dir")) == NULL);
}

int
main (void)
{
  REQUIRE (mkdtemp (dir));
  test_order_and_select ();
  test_gap_dup_reorder ();
  test_disks_and_bad_files ();
  clean ();
  rmdir (dir);
  return vb_test_end ("test-chain");
}
