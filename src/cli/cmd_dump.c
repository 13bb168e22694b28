/* SPDX-License-Identifier: GPL-3.0-or-later */
/* virtback dump: show the files and chain of a backup directory; the work
 * is in restore/dump.c. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include <json-c/json.h>

#include "backupset/chain.h"
#include "cli/cli.h"
#include "common/error.h"
#include "target/target.h"
#include "restore/restore.h"

static const char usage_text[] =
  "Usage: virtback dump -i DIR [--json]\n"
  "\n"
  "Show the metadata of every data file of a backup directory, per disk in\n"
  "chain order (level, checkpoint, parent, date, virtual size, data size,\n"
  "compression), then the checkpoint chain.\n"
  "\n"
  "Options:\n"
  "  -i, --input DIR            backup directory\n"
  "      --json                 print one JSON document instead of text\n"
  "  -h, --help                 show this help\n";

int
cmd_dump (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "input", required_argument, NULL, 'i' },
    { "json", no_argument, NULL, 'J' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *input = NULL;
  struct vb_chain *chain;
  struct vb_target *t = NULL;
  int c, json = 0;

  while ((c = getopt_long (argc, argv, "i:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'i': input = optarg; break;
    case 'J': json = 1; break;
    case 'h': fputs (usage_text, stdout); return VB_EXIT_OK;
    default:
      vb_cli_errorf ("dump", "run 'virtback dump --help' for the options");
      return VB_EXIT_USAGE;
    }
  }
  if (!input || optind != argc) {
    vb_cli_errorf ("dump", "give the backup directory with -i DIR and "
                   "nothing else");
    return VB_EXIT_USAGE;
  }
  if (!(t = vb_target_dir_open (input, NULL)) ||
      !(chain = vb_chain_scan (t))) {
    vb_cli_error ("dump");
    vb_target_close (t);
    return VB_EXIT_FAIL;
  }
  if (json) {
    struct json_object *o = vb_dump_json (chain);
    puts (json_object_to_json_string_ext (o, JSON_C_TO_STRING_PRETTY |
                                          JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put (o);
  }
  else {
    char *text = vb_dump_text (chain);
    if (!text) {
      vb_chain_free (chain);
      vb_target_close (t);
      vb_cli_error ("dump");
      return VB_EXIT_FAIL;
    }
    fputs (text, stdout);
    free (text);
  }
  vb_chain_free (chain);
  vb_target_close (t);
  return VB_EXIT_OK;
}
