/* SPDX-License-Identifier: GPL-3.0-or-later */
/* virtback replica status|apply|receive DIR, on the standby host; the
 * work is in replica/. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "common/error.h"
#include "common/log.h"
#include "common/parse.h"
#include "replica/replica.h"

static const char usage_text[] =
  "Usage: virtback replica status DIR [--json]\n"
  "       virtback replica apply DIR\n"
  "       virtback replica receive DIR [--timeout S]\n"
  "\n"
  "On the standby host: show what the standby directory DIR holds (the last\n"
  "completed point and its time, the source domain, whether a sync is in\n"
  "progress or was interrupted, whether the last sync's fold runs or is\n"
  "pending); finish a sync that was interrupted while it was applied, and a\n"
  "pending fold; or receive a sync (virtback replicate runs this through ssh).\n"
  "\n"
  "Options:\n"
  "      --json                 status as one JSON document\n"
  "      --timeout S            receive: give up when the source sends\n"
  "                             nothing for S seconds (default: 60)\n"
  "  -h, --help                 show this help\n";

enum { OPT_JSON = 256, OPT_TIMEOUT };

/* The receiver's stdout is the wire: only warnings go to stderr, which
 * ssh hands to the source. */
/* VIRTBACK_DEBUG=1: the phase notes too (bench-replicate.sh -p). */
static bool
debug_on (void)
{
  const char *e = getenv ("VIRTBACK_DEBUG");
  return e && *e && strcmp (e, "0");
}

static void
log_sink (enum vb_log_level lvl, const char *msg, void *opaque)
{
  (void) opaque;
  if (lvl == VB_LOG_WARN)
    fprintf (stderr, "virtback replica: warning: %s\n", msg);
  else if (lvl == VB_LOG_DEBUG && debug_on ())
    fprintf (stderr, "virtback replica: %s\n", msg);
}

static int
status (const char *dir, bool json)
{
  struct json_object *st = vb_replica_status (dir);
  char *text;

  if (!st) {
    vb_cli_error ("replica status");
    return VB_EXIT_FAIL;
  }
  if (json)
    puts (json_object_to_json_string_ext (st, JSON_C_TO_STRING_PRETTY |
                                          JSON_C_TO_STRING_NOSLASHESCAPE));
  else if ((text = vb_replica_status_text (st, dir))) {
    fputs (text, stdout);
    free (text);
  }
  json_object_put (st);
  return VB_EXIT_OK;
}

static int
run (const char *sub, const char *dir, bool json, unsigned timeout)
{
  if (!strcmp (sub, "status"))
    return status (dir, json);
  vb_log_set_sink (log_sink, NULL);
  if (!strcmp (sub, "apply")) {
    if (vb_replica_apply (dir) < 0) {
      vb_cli_error ("replica apply");
      return VB_EXIT_FAIL;
    }
    return VB_EXIT_OK;
  }
  /* The error went to the source on the wire. */
  return vb_replica_receive (dir, STDIN_FILENO, STDOUT_FILENO, timeout,
                             vb_cli_stop_on_signals ()) < 0
         ? VB_EXIT_FAIL : VB_EXIT_OK;
}

int
cmd_replica (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "json", no_argument, NULL, OPT_JSON },
    { "timeout", required_argument, NULL, OPT_TIMEOUT },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  unsigned timeout = 60;
  bool json = false;
  uint64_t v;
  int c;

  while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case OPT_JSON: json = true; break;
    case OPT_TIMEOUT:
      if (vb_parse_uint (optarg, 86400, &v) < 0 || v == 0) {
        vb_cli_errorf ("replica", "--timeout %s: give seconds, 1 to 86400",
                       optarg);
        return VB_EXIT_USAGE;
      }
      timeout = v;
      break;
    case 'h': fputs (usage_text, stdout); return VB_EXIT_OK;
    default:
      vb_cli_errorf ("replica", "see 'virtback replica --help'");
      return VB_EXIT_USAGE;
    }
  }
  if (argc - optind != 2 || (strcmp (argv[optind], "status") &&
                             strcmp (argv[optind], "apply") &&
                             strcmp (argv[optind], "receive"))) {
    vb_cli_errorf ("replica", "give status, apply or receive and the "
                   "standby directory: see 'virtback replica --help'");
    return VB_EXIT_USAGE;
  }
  return run (argv[optind], argv[optind + 1], json, timeout);
}
