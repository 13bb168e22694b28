/* SPDX-License-Identifier: GPL-3.0-or-later */
/* virtback verify: check a backup directory end to end; the work is in
 * restore/verify.c.  Problems go to stdout, one per line, so they can be
 * collected; the verdict is the exit code and the last line.  Whether the
 * domain still holds the chain's checkpoints is no verdict on the files: it
 * goes to stderr after them, and never changes the exit code. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "common/error.h"
#include "restore/restore.h"

static const char usage_text[] =
  "Usage: virtback verify -i DIR [-U URI] [-C DIR]\n"
  "\n"
  "Read every data file of a backup directory end to end and check the frames,\n"
  "the lz4 checksums, the trailer, the stored .chksum files and the chain.\n"
  "Prints one line per problem and exits 0 only when there is none.  Then asks\n"
  "libvirt whether the domain still holds the chain's checkpoints, and warns\n"
  "when the next incremental into DIR would be refused (exit code unchanged).\n"
  "\n"
  "Options:\n"
  "  -i, --input DIR            backup directory\n"
  "  -U, --uri URI              libvirt connection URI (default qemu:///system)\n"
  "  -C, --checkpointdir DIR    saved checkpoint XML (default DIR/checkpoints)\n"
  "  -h, --help                 show this help\n";

static void
checkpoint_note (const char *input, const char *uri, const char *cptdir)
{
  char *msg = NULL;
  int r = vb_verify_checkpoint (input, uri, cptdir, &msg);

  if (r == 1)
    vb_cli_errorf ("verify", "warning: %s", msg ? msg : "");
  else if (r == 2)
    vb_cli_errorf ("verify", "note: could not check whether the domain "
                   "still holds the chain's checkpoints: %s",
                   msg ? msg : "");
  free (msg);
}

int
cmd_verify (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "input", required_argument, NULL, 'i' },
    { "uri", required_argument, NULL, 'U' },
    { "checkpointdir", required_argument, NULL, 'C' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  struct vb_verify_report rep;
  const char *input = NULL, *uri = NULL, *cptdir = NULL;
  int c, ret;

  while ((c = getopt_long (argc, argv, "i:U:C:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'i': input = optarg; break;
    case 'U': uri = optarg; break;
    case 'C': cptdir = optarg; break;
    case 'h': fputs (usage_text, stdout); return VB_EXIT_OK;
    default:
      vb_cli_errorf ("verify", "run 'virtback verify --help' for the options");
      return VB_EXIT_USAGE;
    }
  }
  if (!input || optind != argc) {
    vb_cli_errorf ("verify", "give the backup directory with -i DIR and "
                   "nothing else");
    return VB_EXIT_USAGE;
  }
  if (vb_verify (input, &rep) == -1) {
    vb_cli_error ("verify");
    return VB_EXIT_FAIL;
  }
  for (size_t i = 0; i < rep.nnotes; i++)
    printf ("note: %s\n", rep.notes[i]);
  for (size_t i = 0; i < rep.nproblems; i++)
    printf ("FAIL: %s\n", rep.problems[i]);
  if (rep.nproblems == 0)
    printf ("OK: %zu data files of %zu disks, %" PRIu64 " bytes read, "
            "%zu checksum files matched, chain consistent\n",
            rep.nfiles, rep.ndisks, rep.bytes, rep.nchksums);
  else {
    fflush (stdout);
    vb_cli_errorf ("verify", "%zu problems in %s: restoring from it will "
                   "fail where they are", rep.nproblems, input);
  }
  ret = rep.nproblems ? VB_EXIT_FAIL : VB_EXIT_OK;
  vb_verify_report_clear (&rep);
  fflush (stdout);
  checkpoint_note (input, uri, cptdir);
  return ret;
}
