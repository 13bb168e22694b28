/* SPDX-License-Identifier: GPL-3.0-or-later */
/* virtback failover: start the standby domain from the last completed
 * sync; the work is in replica/failover.c. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "common/error.h"
#include "replica/replica.h"

static const char usage_text[] =
  "Usage: virtback failover -i DIR [-N NAME] [-U URI]\n"
  "\n"
  "On the standby host: define and start the domain replicated into DIR, on\n"
  "the images of its last completed sync.  Refused while a sync runs or is\n"
  "being applied.\n"
  "\n"
  "Options:\n"
  "  -i, --input DIR            standby directory\n"
  "  -N, --name NAME            name of the new domain (default: the source's)\n"
  "  -U, --uri URI              libvirt connection (default: qemu:///system)\n"
  "  -h, --help                 show this help\n";

int
cmd_failover (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "input", required_argument, NULL, 'i' },
    { "name", required_argument, NULL, 'N' },
    { "uri", required_argument, NULL, 'U' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  struct vb_failover_opts o = { 0 };
  char *name;
  int c;

  while ((c = getopt_long (argc, argv, "i:N:U:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'i': o.dir = optarg; break;
    case 'N': o.name = optarg; break;
    case 'U': o.uri = optarg; break;
    case 'h': fputs (usage_text, stdout); return VB_EXIT_OK;
    default:
      vb_cli_errorf ("failover", "see 'virtback failover --help'");
      return VB_EXIT_USAGE;
    }
  }
  if (!o.dir || optind != argc) {
    vb_cli_errorf ("failover", "give the standby directory with -i DIR and "
                   "nothing else");
    return VB_EXIT_USAGE;
  }
  if (!(name = vb_failover (&o))) {
    vb_cli_error ("failover");
    return VB_EXIT_FAIL;
  }
  printf ("domain '%s' runs on the standby images in %s\n", name, o.dir);
  free (name);
  return VB_EXIT_OK;
}
