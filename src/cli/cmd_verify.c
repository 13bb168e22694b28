/* virtback verify: check a backup directory end to end; the work is in
 * restore/verify.c.  Problems go to stdout, one per line, so they can be
 * collected; the verdict is the exit code and the last line. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>

#include "cli/cli.h"
#include "common/error.h"
#include "restore/restore.h"

static const char usage_text[] =
  "Usage: virtback verify -i DIR\n"
  "\n"
  "Read every data file of a backup directory end to end and check the frames,\n"
  "the lz4 checksums, the trailer, the stored .chksum files and the chain.\n"
  "Prints one line per problem and exits 0 only when there is none.\n"
  "\n"
  "Options:\n"
  "  -i, --input DIR            backup directory\n"
  "  -h, --help                 show this help\n";

int
cmd_verify (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "input", required_argument, NULL, 'i' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  struct vb_verify_report rep;
  const char *input = NULL;
  int c, ret;

  while ((c = getopt_long (argc, argv, "i:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'i': input = optarg; break;
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
  return ret;
}
