/* SPDX-License-Identifier: GPL-3.0-or-later */
/* test-plan.c: vb_plan_decide, the chain decision of one backup run, on
 * made-up inputs: every level into empty, non-empty and leftovers-only
 * directories, foreign checkpoints, prefixes, print-only, inputs that could
 * not be read, and the names virtnbdbackup gives (copy's checkpointName
 * "<prefix>.0", an inc "<prefix>.<chain length>", a diff's ident an
 * epoch). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/chain_plan.h"
#include "backupset/backupset.h"
#include "common/error.h"
#include "common/test.h"

#define NOW 1700000000LL

static char *none[] = { NULL };
static char *chain1[] = { "virtback.0", NULL };
static char *chain3[] = { "virtback.0", "virtback.1", "virtback.2", NULL };

/* A domain with no checkpoints and a directory that is missing or empty. */
static struct vb_plan_in
input (enum vb_level level)
{
  return (struct vb_plan_in) {
    .level = level, .domain = "dom", .outdir = "/bk/dom",
    .checkpoints = none, .has_backup = 0, .only_leftovers = 1,
    .chain = none, .now = NOW,
  };
}

/* The directory of a run that went on: data files, a .cpt of CHAIN and
 * libvirt's checkpoints of it. */
static struct vb_plan_in
input_chain (enum vb_level level, char **chain)
{
  struct vb_plan_in in = input (level);

  in.has_backup = 1;
  in.only_leftovers = 0;
  in.checkpoints = chain;
  in.chain = chain;
  return in;
}

static int
decide (const struct vb_plan_in *in, struct vb_plan *p)
{
  vb_set_error ("untouched");
  return vb_plan_decide (in, p);
}

/* P is a plan of LEVEL creating CHECKPOINT (or none) from PARENT (or
 * none), with checkpointName META and side-file ident IDENT. */
static void
check_plan (struct vb_plan *p, enum vb_level level, const char *checkpoint,
            const char *parent, const char *meta, const char *ident)
{
  CHECK (p->level == level);
  CHECK_STR (p->checkpoint, checkpoint);
  CHECK_STR (p->parent, parent);
  CHECK_STR (p->meta_checkpoint, meta);
  CHECK_STR (p->ident, ident);
}

static void
test_copy (void)
{
  struct vb_plan_in in = input (VB_LEVEL_COPY);
  struct vb_plan p;

  CHECK (decide (&in, &p) == 0);
  check_plan (&p, VB_LEVEL_COPY, NULL, NULL, "virtback.0", "copy");
  vb_plan_free (&p);

  in = input_chain (VB_LEVEL_COPY, chain3);
  CHECK_ERR (decide (&in, &p) == -1, "/bk/dom is not empty: a copy backup "
             "needs an empty or new directory");
  vb_plan_free (&p);

  in = input (VB_LEVEL_COPY);
  in.only_leftovers = 0;       /* files of someone else's */
  CHECK_ERR (decide (&in, &p) == -1, "/bk/dom is not empty");
  vb_plan_free (&p);
}

static void
test_full (void)
{
  struct vb_plan_in in = input (VB_LEVEL_FULL);
  struct vb_plan p;

  CHECK (decide (&in, &p) == 0);
  check_plan (&p, VB_LEVEL_FULL, "virtback.0", NULL, "virtback.0",
              "virtback.0");
  CHECK (p.chain && p.chain[0] == NULL);
  vb_plan_free (&p);

  /* A full on top of a chain is refused; its checkpoints would be ours. */
  in = input_chain (VB_LEVEL_FULL, chain3);
  CHECK_ERR (decide (&in, &p) == -1, "/bk/dom is not empty: a full backup "
             "needs an empty or new directory");
  vb_plan_free (&p);

  /* Backup data decides, whatever else the listing says. */
  in = input (VB_LEVEL_FULL);
  in.has_backup = 1;
  CHECK_ERR (decide (&in, &p) == -1, "/bk/dom is not empty");
  vb_plan_free (&p);

  /* The retry of a first full that failed. */
  in = input (VB_LEVEL_FULL);
  in.checkpoints = chain1;
  CHECK (decide (&in, &p) == 0);
  check_plan (&p, VB_LEVEL_FULL, "virtback.0", NULL, "virtback.0",
              "virtback.0");
  vb_plan_free (&p);
}

static void
test_inc (void)
{
  struct vb_plan_in in = input_chain (VB_LEVEL_INC, chain3);
  struct vb_plan p;

  CHECK (decide (&in, &p) == 0);
  check_plan (&p, VB_LEVEL_INC, "virtback.3", "virtback.2", "virtback.3",
              "virtback.3");
  vb_plan_free (&p);

  in = input_chain (VB_LEVEL_INC, chain1);
  CHECK (decide (&in, &p) == 0);
  check_plan (&p, VB_LEVEL_INC, "virtback.1", "virtback.0", "virtback.1",
              "virtback.1");
  vb_plan_free (&p);

  /* The number is the chain's length, whatever libvirt still holds. */
  in = input_chain (VB_LEVEL_INC, chain3);
  in.checkpoints = none;
  CHECK (decide (&in, &p) == 0);
  CHECK_STR (p.checkpoint, "virtback.3");
  vb_plan_free (&p);

  /* A name a pull job's chain holds is skipped; a leftover's is not. */
  {
    char *cps[] = { "virtback.0", "virtback.1", "virtback.2", NULL };
    char *jobs[] = { "virtback.1", "virtback.2", NULL };
    in = input_chain (VB_LEVEL_INC, chain1);
    in.checkpoints = cps;
    in.taken = jobs;
    CHECK (decide (&in, &p) == 0);
    check_plan (&p, VB_LEVEL_INC, "virtback.3", "virtback.0", "virtback.3",
                "virtback.3");
    vb_plan_free (&p);
    in.taken = NULL;
    CHECK (decide (&in, &p) == 0);
    check_plan (&p, VB_LEVEL_INC, "virtback.1", "virtback.0", "virtback.1",
                "virtback.1");
    vb_plan_free (&p);
  }
  /* A job's point between the chain's own: the chain's newest name is
   * its parent, never the new one. */
  {
    char *cps[] = { "virtback.0", "virtback.1", "virtback.2", NULL };
    char *own[] = { "virtback.0", "virtback.2", NULL };
    char *jobs[] = { "virtback.1", NULL };
    in = input_chain (VB_LEVEL_INC, own);
    in.checkpoints = cps;
    in.taken = jobs;
    CHECK (decide (&in, &p) == 0);
    check_plan (&p, VB_LEVEL_INC, "virtback.3", "virtback.2", "virtback.3",
                "virtback.3");
    vb_plan_free (&p);
  }
  {
    char *taken[] = { "virtback.0", "virtback.1", "virtback.2", NULL };
    in = input_chain (VB_LEVEL_INC, chain1);
    in.checkpoints = taken;
    in.taken = taken;
    CHECK (decide (&in, &p) == 0);
    check_plan (&p, VB_LEVEL_INC, "virtback.3", "virtback.0", "virtback.3",
                "virtback.3");
    vb_plan_free (&p);
  }

  in = input (VB_LEVEL_INC);
  CHECK_ERR (decide (&in, &p) == -1, "/bk/dom holds no backup chain of "
             "domain 'dom': run a full backup first (-l full)");
  vb_plan_free (&p);

  /* Data files but no .cpt: still no chain to go on from. */
  in = input (VB_LEVEL_INC);
  in.has_backup = 1;
  in.only_leftovers = 0;
  CHECK_ERR (decide (&in, &p) == -1, "holds no backup chain");
  vb_plan_free (&p);
}

static void
test_diff (void)
{
  struct vb_plan_in in = input_chain (VB_LEVEL_DIFF, chain3);
  struct vb_plan p;

  CHECK (decide (&in, &p) == 0);
  check_plan (&p, VB_LEVEL_DIFF, NULL, "virtback.2", "virtback.3",
              "1700000000");
  vb_plan_free (&p);

  in.now = 1;
  CHECK (decide (&in, &p) == 0);
  CHECK_STR (p.ident, "1");
  vb_plan_free (&p);

  in = input (VB_LEVEL_DIFF);
  CHECK_ERR (decide (&in, &p) == -1, "holds no backup chain of domain "
             "'dom'");
  vb_plan_free (&p);
}

static void
test_auto (void)
{
  struct vb_plan_in in = input (VB_LEVEL_AUTO);
  struct vb_plan p;

  CHECK (decide (&in, &p) == 0);
  check_plan (&p, VB_LEVEL_FULL, "virtback.0", NULL, "virtback.0",
              "virtback.0");
  vb_plan_free (&p);

  in = input_chain (VB_LEVEL_AUTO, chain1);
  CHECK (decide (&in, &p) == 0);
  check_plan (&p, VB_LEVEL_INC, "virtback.1", "virtback.0", "virtback.1",
              "virtback.1");
  vb_plan_free (&p);

  /* Only what a failed run left: a full starts there. */
  in = input (VB_LEVEL_AUTO);
  in.checkpoints = chain1;
  CHECK (decide (&in, &p) == 0);
  CHECK (p.level == VB_LEVEL_FULL);
  vb_plan_free (&p);

  /* Files that are no backup's: auto resolves to full and says so. */
  in = input (VB_LEVEL_AUTO);
  in.only_leftovers = 0;
  CHECK_ERR (decide (&in, &p) == -1, "/bk/dom is not empty: a full backup "
             "needs an empty or new directory");
  vb_plan_free (&p);
}

static void
test_print_only (void)
{
  struct vb_plan_in in = input_chain (VB_LEVEL_FULL, chain3);
  struct vb_plan p;

  in.print_only = true;
  CHECK (decide (&in, &p) == 0);
  check_plan (&p, VB_LEVEL_FULL, "virtback.0", NULL, "virtback.0",
              "virtback.0");
  vb_plan_free (&p);

  in = input (VB_LEVEL_COPY);
  in.only_leftovers = 0;
  in.print_only = true;
  CHECK (decide (&in, &p) == 0);
  CHECK (p.level == VB_LEVEL_COPY);
  vb_plan_free (&p);

  in = input (VB_LEVEL_AUTO);
  in.only_leftovers = 0;
  in.print_only = true;
  CHECK (decide (&in, &p) == 0);
  CHECK (p.level == VB_LEVEL_FULL);
  vb_plan_free (&p);

  /* -p plans an inc as a run would; it cannot plan one without a chain. */
  in = input (VB_LEVEL_INC);
  in.print_only = true;
  CHECK_ERR (decide (&in, &p) == -1, "holds no backup chain");
  vb_plan_free (&p);
}

static void
test_foreign (void)
{
  char *cps[] = { "virtback.0", "other", "virtback.x", "virtback.",
                  "virtbackup.1", "virtback", "Virtback.1", "virtback.1a",
                  "a.1", "b.1", NULL };
  struct vb_plan_in in = input_chain (VB_LEVEL_INC, chain1);
  struct vb_plan p;
  const char *e;

  in.checkpoints = cps;
  CHECK_ERR (decide (&in, &p) == -1, "domain 'dom' has checkpoints not made "
             "with prefix 'virtback': other, virtback.x, virtback., "
             "virtbackup.1, virtback, Virtback.1, virtback.1a, a.1; use "
             "--checkpoint-prefix to continue that chain, or remove them "
             "with 'virsh checkpoint-delete'");
  e = vb_get_error ();
  CHECK (strstr (e, "b.1") == NULL);  /* eight named, not more */
  CHECK (strstr (e, "virtback.0,") == NULL);
  vb_plan_free (&p);

  /* Refused before anything else, at every level. */
  for (enum vb_level l = VB_LEVEL_COPY; l <= VB_LEVEL_AUTO; l++) {
    in = input (l);
    in.checkpoints = cps;
    in.has_backup = -1;
    CHECK_ERR (decide (&in, &p) == -1, "not made with prefix 'virtback'");
    vb_plan_free (&p);
  }
}

static void
test_prefix (void)
{
  char *theirs[] = { "virtnbdbackup.0", "virtnbdbackup.1", NULL };
  char *digits[] = { "virtback.0", "virtback.007", "virtback.10", NULL };
  struct vb_plan_in in = input_chain (VB_LEVEL_INC, theirs);
  struct vb_plan p;

  in.prefix = "virtnbdbackup";
  CHECK (decide (&in, &p) == 0);
  check_plan (&p, VB_LEVEL_INC, "virtnbdbackup.2", "virtnbdbackup.1",
              "virtnbdbackup.2", "virtnbdbackup.2");
  CHECK_STR (p.prefix, "virtnbdbackup");
  vb_plan_free (&p);

  in.prefix = NULL;            /* the default is ours, theirs is foreign */
  CHECK_ERR (decide (&in, &p) == -1, "not made with prefix 'virtback': "
             "virtnbdbackup.0, virtnbdbackup.1;");
  vb_plan_free (&p);

  in = input (VB_LEVEL_FULL);
  in.prefix = "nightly";
  CHECK (decide (&in, &p) == 0);
  check_plan (&p, VB_LEVEL_FULL, "nightly.0", NULL, "nightly.0",
              "nightly.0");
  vb_plan_free (&p);

  in = input (VB_LEVEL_COPY);
  in.prefix = "nightly";
  CHECK (decide (&in, &p) == 0);
  check_plan (&p, VB_LEVEL_COPY, NULL, NULL, "nightly.0", "copy");
  vb_plan_free (&p);

  in = input_chain (VB_LEVEL_DIFF, theirs);
  in.prefix = "virtnbdbackup";
  CHECK (decide (&in, &p) == 0);
  check_plan (&p, VB_LEVEL_DIFF, NULL, "virtnbdbackup.1", "virtnbdbackup.2",
              "1700000000");
  vb_plan_free (&p);

  /* Any digits after the dot are ours. */
  in = input_chain (VB_LEVEL_INC, digits);
  CHECK (decide (&in, &p) == 0);
  CHECK_STR (p.parent, "virtback.10");
  CHECK_STR (p.checkpoint, "virtback.3");
  vb_plan_free (&p);
}

/* An input that could not be read fails the decision with the reader's
 * error, unless a refusal the decision comes to first applies. */
static void
test_unreadable (void)
{
  struct vb_plan_in in = input (VB_LEVEL_AUTO);
  struct vb_plan p;

  in.has_backup = in.only_leftovers = -1;
  in.chain = NULL;
  for (enum vb_level l = VB_LEVEL_COPY; l <= VB_LEVEL_AUTO; l++) {
    in.level = l;
    vb_set_error ("open directory /bk/dom: Permission denied");
    CHECK (vb_plan_decide (&in, &p) == -1);
    CHECK_STR (vb_get_error (), "open directory /bk/dom: Permission denied");
    vb_plan_free (&p);
  }

  /* A .cpt that could not be read, where the plan needs it. */
  in = input_chain (VB_LEVEL_INC, chain1);
  in.chain = NULL;
  vb_set_error ("/bk/dom/dom.cpt: invalid checkpoint file");
  CHECK (vb_plan_decide (&in, &p) == -1);
  CHECK_STR (vb_get_error (), "/bk/dom/dom.cpt: invalid checkpoint file");
  vb_plan_free (&p);

  /* ... and where a full is refused anyway: the refusal is what counts. */
  in.level = VB_LEVEL_FULL;
  CHECK_ERR (decide (&in, &p) == -1, "/bk/dom is not empty");
  vb_plan_free (&p);

  /* Only the leftovers check could not be read: a full needs it. */
  in = input (VB_LEVEL_FULL);
  in.only_leftovers = -1;
  in.chain = NULL;
  vb_set_error ("open directory /bk/dom: Too many open files");
  CHECK (vb_plan_decide (&in, &p) == -1);
  CHECK_STR (vb_get_error (), "open directory /bk/dom: Too many open files");
  vb_plan_free (&p);
}

/* The plan owns a copy of the chain, as found. */
static void
test_chain_copy (void)
{
  char *chain[] = { "virtback.0", "virtback.1", NULL };
  char **copy;
  struct vb_plan_in in = input_chain (VB_LEVEL_INC, chain);
  struct vb_plan p;

  CHECK (decide (&in, &p) == 0);
  copy = p.chain;
  REQUIRE (copy && vb_strv_len (copy) == 2);
  CHECK_STR (copy[0], "virtback.0");
  CHECK_STR (copy[1], "virtback.1");
  CHECK (copy != chain && copy[0] != chain[0] && copy[1] != chain[1]);
  CHECK (p.cpt == NULL);
  vb_plan_free (&p);
}

int
main (void)
{
  test_copy ();
  test_full ();
  test_inc ();
  test_diff ();
  test_auto ();
  test_print_only ();
  test_foreign ();
  test_prefix ();
  test_unreadable ();
  test_chain_copy ();
  return vb_test_end ("test-plan");
}
