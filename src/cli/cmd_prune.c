/* SPDX-License-Identifier: GPL-3.0-or-later */
/* virtback prune: keep-chains by hand, with the code `virtback run` uses. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/parse.h"
#include "run/chains.h"
#include "run/config.h"

static const char usage_text[] =
  "Usage: virtback prune -o OUTPUT/DOMAIN --keep-chains N [--dry-run]\n"
  "\n"
  "Remove the oldest chains of a domain's directory of `virtback run`,\n"
  "keeping the N newest (the current one always).\n"
  "\n"
  "Options:\n"
  "  -o, --output DIR      the domain's directory (OUTPUT/DOMAIN)\n"
  "      --keep-chains N   chains to keep, the current one included\n"
  "      --dry-run         print what would be removed, remove nothing\n"
  "  -h, --help            show this help\n";

enum { OPT_KEEP = 256, OPT_DRY };

static const struct option longopts[] = {
  { "output", required_argument, NULL, 'o' },
  { "keep-chains", required_argument, NULL, OPT_KEEP },
  { "dry-run", no_argument, NULL, OPT_DRY },
  { "help", no_argument, NULL, 'h' },
  { NULL, 0, NULL, 0 },
};

static int
parse_args (int argc, char **argv, const char **dir, unsigned *keep,
            bool *dry)
{
  uint64_t v;
  int c;

  optind = 1;
  while ((c = getopt_long (argc, argv, "o:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'o': *dir = optarg; break;
    case OPT_KEEP:
      if (vb_parse_uint (optarg, 10000, &v) < 0 || v == 0) {
        vb_cli_errorf ("prune", "invalid --keep-chains '%s': 1 to 10000",
                       optarg);
        return -1;
      }
      *keep = v;
      break;
    case OPT_DRY: *dry = true; break;
    case 'h': fputs (usage_text, stdout); exit (VB_EXIT_OK);
    default:
      vb_cli_errorf ("prune", "see 'virtback prune --help'");
      return -1;
    }
  }
  if (optind < argc || !*dir || !*keep) {
    vb_cli_errorf ("prune", "-o OUTPUT/DOMAIN and --keep-chains N are "
                   "required: see 'virtback prune --help'");
    return -1;
  }
  return 0;
}

int
cmd_prune (int argc, char **argv)
{
  const char *dir = NULL;
  unsigned keep = 0;
  bool dry = false;
  CLEANUP_STRV char **pruned = NULL;
  int fd, r;

  if (parse_args (argc, argv, &dir, &keep, &dry) < 0)
    return VB_EXIT_USAGE;
  if ((fd = vb_chains_lock (dir, false)) < 0) {
    vb_cli_error ("prune");
    return VB_EXIT_FAIL;
  }
  r = vb_chains_prune (dir, keep, dry, &pruned);
  vb_chains_unlock (fd);
  for (size_t i = 0; pruned && pruned[i]; i++)
    printf ("%s %s/%s\n", dry ? "would remove" : "removed", dir, pruned[i]);
  if (r < 0) {
    vb_cli_error ("prune");
    return VB_EXIT_FAIL;
  }
  if (!pruned || !pruned[0])
    printf ("nothing to prune in %s: at most %u chains\n", dir, keep);
  return VB_EXIT_OK;
}
