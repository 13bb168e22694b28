/* SPDX-License-Identifier: GPL-3.0-or-later */
/* virtback job: pull-backup jobs for other tools, read through virtback
 * serve; the work is in job/. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "common/error.h"
#include "common/log.h"
#include "common/parse.h"
#include "job/job.h"
#include "serve/serve.h"

static const char usage_text[] =
  "Usage: virtback job start -d DOMAIN -l full|inc [--from CHECKPOINT] [--json]\n"
  "                          [-U URI] [--control-socket PATH] [--timeout SECONDS]\n"
  "                          [--base-url URL] [--checkpoint-prefix PREFIX]\n"
  "                          [-S DIR] [--no-freeze]\n"
  "       virtback job finish ID\n"
  "       virtback job list [--json]\n"
  "\n"
  "Begin a pull-mode backup job of a running domain with a new checkpoint,\n"
  "and give each disk a ticket on the local virtback serve, whose transfer\n"
  "URL any ovirt-imageio client reads (an inc's tickets list the changed\n"
  "blocks as dirty extents).  'finish' ends the job and records its\n"
  "checkpoint, so the next inc job starts from it; a job not finished\n"
  "within its timeout is ended by the next 'start' or 'list', and its\n"
  "checkpoint dropped.  A client that extends the tickets (PATCH\n"
  "/tickets/ID on serve's control socket) extends the job with them.\n"
  "\n"
  "Options:\n"
  "  -d, --domain DOMAIN        the domain to back up\n"
  "  -l, --level full|inc       full: all the disk, a new chain; inc: what\n"
  "                             changed since the job chain's newest point\n"
  "      --from CHECKPOINT      inc: since this checkpoint instead (one of a\n"
  "                             backup directory's, say)\n"
  "      --json                 print the job as JSON\n"
  "  -U, --uri URI              libvirt connection (default: qemu:///system)\n"
  "      --control-socket PATH  virtback serve's control socket\n"
  "                             (default: " VB_SERVE_CONTROL ")\n"
  "      --timeout SECONDS      lifetime of the job and its tickets\n"
  "                             (default: 3600)\n"
  "      --base-url URL         virtback serve's data URL as clients reach it\n"
  "                             (default: " VB_JOB_BASE_URL ")\n"
  "      --checkpoint-prefix P  name checkpoints P.0, P.1, ... (default: virtback)\n"
  "  -S, --scratchdir DIR       the job's socket and scratch images go into a\n"
  "                             private directory here (default: /var/tmp)\n"
  "      --no-freeze            do not freeze the guest's filesystems\n"
  "  -h, --help                 show this help\n";

static volatile sig_atomic_t *cancel;

enum { OPT_FROM = 256, OPT_JSON, OPT_CONTROL, OPT_TIMEOUT, OPT_BASE,
       OPT_PREFIX, OPT_NOFREEZE };

static void
sink (enum vb_log_level lvl, const char *msg, void *op)
{
  if (lvl != VB_LOG_DEBUG)
    fprintf (stderr, "virtback job: %s%s\n",
             lvl == VB_LOG_WARN ? "warning: " : "", msg);
}

static int
usage_error (const char *msg)
{
  vb_cli_errorf ("job", "%s: see 'virtback job --help'", msg);
  return VB_EXIT_USAGE;
}

static int
parse_level (const char *s, struct vb_job_opts *o)
{
  if (!strcmp (s, "full") || !strcmp (s, "inc")) {
    o->inc = !strcmp (s, "inc");
    return 0;
  }
  return -1;
}

static int
parse_timeout (const char *s, struct vb_job_opts *o)
{
  uint64_t v;

  if (vb_parse_uint (s, 7 * 86400, &v) < 0 || v == 0)
    return -1;
  o->timeout = (int) v;
  return 0;
}

/* 0 go on, 1 done (help), -1 usage error (printed). */
static int
parse_start (int argc, char **argv, struct vb_job_opts *o, bool *json)
{
  static const struct option longopts[] = {
    { "domain", required_argument, NULL, 'd' },
    { "level", required_argument, NULL, 'l' },
    { "from", required_argument, NULL, OPT_FROM },
    { "json", no_argument, NULL, OPT_JSON },
    { "uri", required_argument, NULL, 'U' },
    { "control-socket", required_argument, NULL, OPT_CONTROL },
    { "timeout", required_argument, NULL, OPT_TIMEOUT },
    { "base-url", required_argument, NULL, OPT_BASE },
    { "checkpoint-prefix", required_argument, NULL, OPT_PREFIX },
    { "scratchdir", required_argument, NULL, 'S' },
    { "no-freeze", no_argument, NULL, OPT_NOFREEZE },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  bool level = false;
  int c;

  while ((c = getopt_long (argc, argv, "d:l:U:S:h", longopts, NULL)) != -1)
    switch (c) {
    case 'd': o->domain = optarg; break;
    case 'l':
      if (parse_level (optarg, o) < 0)
        return usage_error ("-l takes full or inc"), -1;
      level = true;
      break;
    case OPT_FROM: o->from = optarg; break;
    case OPT_JSON: *json = true; break;
    case 'U': o->uri = optarg; break;
    case OPT_CONTROL: o->control_socket = optarg; break;
    case OPT_TIMEOUT:
      if (parse_timeout (optarg, o) < 0)
        return usage_error ("--timeout takes 1 to 604800 seconds"), -1;
      break;
    case OPT_BASE: o->base_url = optarg; break;
    case OPT_PREFIX: o->prefix = optarg; break;
    case 'S': o->scratchdir = optarg; break;
    case OPT_NOFREEZE: o->no_freeze = true; break;
    case 'h': fputs (usage_text, stdout); return 1;
    default: return usage_error ("unknown option"), -1;
    }
  if (optind != argc || !o->domain || !level)
    return usage_error ("job start needs -d DOMAIN and -l full|inc, and no "
                        "other arguments"), -1;
  if (o->from && !o->inc)
    return usage_error ("--from goes with -l inc"), -1;
  return 0;
}

static void
print_human (const char *json)
{
  struct json_object *o = json_tokener_parse (json), *disks, *v;

  if (!o)
    return;
  v = json_object_object_get (o, "parent");
  printf ("job %s: checkpoint %s%s%s\n",
          json_object_get_string (json_object_object_get (o, "id")),
          json_object_get_string (json_object_object_get (o, "checkpoint")),
          v ? ", since " : "", v ? json_object_get_string (v) : "");
  if (json_object_object_get_ex (o, "disks", &disks)) {
    json_object_object_foreach (disks, name, d)
      printf ("  %s %s %s\n", name, json_object_get_string (
                json_object_object_get (d, "transfer_url")),
              json_object_get_string (json_object_object_get (d, "size")));
  }
  json_object_put (o);
}

static int
job_start (int argc, char **argv)
{
  struct vb_job_opts o = { .cancel = cancel };
  bool json = false;
  char *out = NULL;
  int p = parse_start (argc, argv, &o, &json);

  if (p != 0)
    return p < 0 ? VB_EXIT_USAGE : VB_EXIT_OK;
  if (vb_job_start (&o, &out) < 0) {
    vb_cli_error ("job start");
    return VB_EXIT_FAIL;
  }
  if (json)
    printf ("%s\n", out);
  else
    print_human (out);
  free (out);
  return VB_EXIT_OK;
}

static int
job_finish (int argc, char **argv)
{
  if (argc == 2 && !strcmp (argv[1], "--help")) {
    fputs (usage_text, stdout);
    return VB_EXIT_OK;
  }
  if (argc != 2 || argv[1][0] == '-')
    return usage_error ("job finish takes one job ID");
  if (vb_job_finish (argv[1]) < 0) {
    vb_cli_error ("job finish");
    return VB_EXIT_FAIL;
  }
  return VB_EXIT_OK;
}

static void
print_list (const char *json)
{
  struct json_object *a = json_tokener_parse (json);

  for (size_t i = 0; a && i < json_object_array_length (a); i++) {
    struct json_object *r = json_object_array_get_idx (a, i);
    printf ("%s %s %s %s expires %lld\n",
            json_object_get_string (json_object_object_get (r, "id")),
            json_object_get_string (json_object_object_get (r, "domain")),
            json_object_get_string (json_object_object_get (r, "level")),
            json_object_get_string (json_object_object_get (r, "checkpoint")),
            (long long) json_object_get_int64 (
              json_object_object_get (r, "expires")));
  }
  json_object_put (a);
}

static int
job_list (int argc, char **argv)
{
  bool json = argc == 2 && !strcmp (argv[1], "--json");
  char *out;

  if (argc == 2 && !strcmp (argv[1], "--help")) {
    fputs (usage_text, stdout);
    return VB_EXIT_OK;
  }
  if (argc > 2 || (argc == 2 && !json))
    return usage_error ("job list takes only --json");
  if (!(out = vb_job_list ())) {
    vb_cli_error ("job list");
    return VB_EXIT_FAIL;
  }
  if (json)
    printf ("%s\n", out);
  else
    print_list (out);
  free (out);
  return VB_EXIT_OK;
}

int
cmd_job (int argc, char **argv)
{
  vb_log_set_sink (sink, NULL);
  /* A signal must not cut a start, finish or reap short between two of
   * its steps: start gives up at the next step, the others complete. */
  cancel = vb_cli_stop_on_signals ();
  if (argc >= 2 && !strcmp (argv[1], "start"))
    return job_start (argc - 1, argv + 1);
  if (argc >= 2 && !strcmp (argv[1], "finish"))
    return job_finish (argc - 1, argv + 1);
  if (argc >= 2 && !strcmp (argv[1], "list"))
    return job_list (argc - 1, argv + 1);
  if (argc == 2 && (!strcmp (argv[1], "--help") || !strcmp (argv[1], "-h"))) {
    fputs (usage_text, stdout);
    return VB_EXIT_OK;
  }
  return usage_error ("use job start, job finish ID or job list");
}
