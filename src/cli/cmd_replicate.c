/* SPDX-License-Identifier: GPL-3.0-or-later */
/* virtback replicate: options, one line (or JSON object) per sync, the
 * --interval loop; the work is in replica/send.c. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "common/error.h"
#include "common/log.h"
#include "common/parse.h"
#include "replica/replica.h"

static const char usage_text[] =
  "Usage: virtback replicate -d DOMAIN --to ssh://[USER@]HOST[:PORT]/DIR [OPTIONS]\n"
  "\n"
  "Keep a bootable copy of a running domain's disks in DIR on another host,\n"
  "copying only the blocks changed since the last completed sync.\n"
  "\n"
  "Options:\n"
  "  -d, --domain NAME          domain to replicate\n"
  "      --to URL               ssh://[USER@]HOST[:PORT]/DIR on the standby\n"
  "  -e, --rsh COMMAND          ssh command (default: ssh), as rsync's -e\n"
  "      --remote-virtback PATH virtback on the standby (default: virtback)\n"
  "      --interval S           sync again every S seconds until stopped, on\n"
  "                             one ssh session\n"
  "  -S, --scratchdir DIR       where the private socket and scratch directory\n"
  "                             is made (default: /var/tmp)\n"
  "  -k, --kill-stale           end a stale backup job on the domain first\n"
  "  -U, --uri URI              libvirt connection (default: qemu:///system)\n"
  "  -n, --noprogress           no notes, only the line of each sync\n"
  "      --no-freeze            do not freeze guest filesystems\n"
  "      --json                 one JSON object per sync on stdout\n"
  "  -h, --help                 show this help\n";

enum { OPT_TO = 256, OPT_REMOTE, OPT_INTERVAL, OPT_NOFREEZE, OPT_JSON };

static const struct option longopts[] = {
  { "domain", required_argument, NULL, 'd' },
  { "to", required_argument, NULL, OPT_TO },
  { "rsh", required_argument, NULL, 'e' },
  { "remote-virtback", required_argument, NULL, OPT_REMOTE },
  { "interval", required_argument, NULL, OPT_INTERVAL },
  { "scratchdir", required_argument, NULL, 'S' },
  { "kill-stale", no_argument, NULL, 'k' },
  { "uri", required_argument, NULL, 'U' },
  { "noprogress", no_argument, NULL, 'n' },
  { "no-freeze", no_argument, NULL, OPT_NOFREEZE },
  { "json", no_argument, NULL, OPT_JSON },
  { "help", no_argument, NULL, 'h' },
  { NULL, 0, NULL, 0 },
};

struct args {
  struct vb_replicate_opts o;
  unsigned interval;
  bool quiet, json;
};

static bool quiet_notes;

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
  if ((lvl == VB_LOG_DEBUG && !debug_on ()) ||
      (quiet_notes && lvl == VB_LOG_INFO))
    return;
  fprintf (stderr, "virtback: %s%s\n", lvl == VB_LOG_WARN ? "warning: " : "",
           msg);
}

static int
parse_args (struct args *a, int argc, char **argv)
{
  uint64_t v;
  int c;

  while ((c = getopt_long (argc, argv, "d:e:S:kU:nh", longopts, NULL)) != -1) {
    switch (c) {
    case 'd': a->o.domain = optarg; break;
    case OPT_TO: a->o.to = optarg; break;
    case 'e': a->o.rsh = optarg; break;
    case OPT_REMOTE: a->o.remote = optarg; break;
    case OPT_INTERVAL:
      if (vb_parse_uint (optarg, 86400 * 7, &v) < 0 || v == 0) {
        vb_cli_errorf ("replicate", "--interval %s: give seconds, 1 to "
                       "604800", optarg);
        return -1;
      }
      a->interval = v;
      break;
    case 'S': a->o.scratchdir = optarg; break;
    case 'k': a->o.kill_stale = true; break;
    case 'U': a->o.uri = optarg; break;
    case 'n': a->quiet = true; break;
    case OPT_NOFREEZE: a->o.no_freeze = true; break;
    case OPT_JSON: a->json = true; break;
    case 'h': fputs (usage_text, stdout); exit (VB_EXIT_OK);
    default:
      vb_cli_errorf ("replicate", "see 'virtback replicate --help'");
      return -1;
    }
  }
  if (optind < argc || !a->o.domain || !a->o.to) {
    vb_cli_errorf ("replicate", "-d DOMAIN and --to ssh://HOST/DIR are "
                   "required, and nothing else: see 'virtback replicate "
                   "--help'");
    return -1;
  }
  return 0;
}

static void
report (const struct args *a, const struct vb_replicate_result *r)
{
  if (a->json) {
    struct json_object *o = json_object_new_object ();
    json_object_object_add (o, "point", json_object_new_string (r->point));
    json_object_object_add (o, "parent", r->parent ?
                            json_object_new_string (r->parent) : NULL);
    json_object_object_add (o, "level", json_object_new_string
                            (r->parent ? "inc" : "full"));
    json_object_object_add (o, "bytes", json_object_new_int64 (r->bytes));
    json_object_object_add (o, "disks", json_object_new_int (r->ndisks));
    json_object_object_add (o, "seconds", json_object_new_double (r->seconds));
    json_object_object_add (o, "lag", json_object_new_double (r->lag));
    json_object_object_add (o, "time", json_object_new_int64 (r->point_time));
    puts (json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN));
    json_object_put (o);
  }
  else
    printf ("point %s (%s%s): %" PRIu64 " bytes in %.2f s, lag %.2f s\n",
            r->point, r->parent ? "inc since " : "full",
            r->parent ? r->parent : "", r->bytes, r->seconds, r->lag);
  fflush (stdout);
}

/* Sleep until the next sync is due, or a signal. */
static void
pause_until (double due, volatile sig_atomic_t *stop)
{
  struct timespec ts = { 0, 100000000 };

  while (!*stop) {
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    if (now.tv_sec + now.tv_nsec / 1e9 >= due)
      return;
    nanosleep (&ts, NULL);
  }
}

int
cmd_replicate (int argc, char **argv)
{
  struct args a = { 0 };
  volatile sig_atomic_t *stop;
  int failed = 0;

  if (parse_args (&a, argc, argv) < 0)
    return VB_EXIT_USAGE;
  quiet_notes = a.quiet || a.json;
  vb_log_set_sink (log_sink, NULL);
  stop = vb_cli_stop_on_signals ();
  a.o.cancel = stop;
  /* One ssh session for the run; the receiver waits for the next sync
   * a minute longer than the interval, then gives up by itself. */
  if (a.interval) {
    if (!(a.o.link = vb_replica_link_new ())) {
      vb_cli_error ("replicate");
      return VB_EXIT_FAIL;
    }
    a.o.idle_s = a.interval + 60;
  }
  for (;;) {
    struct vb_replicate_result r;
    struct timespec t0;
    clock_gettime (CLOCK_MONOTONIC, &t0);
    if (vb_replicate (&a.o, &r) < 0) {
      vb_cli_error ("replicate");
      failed = 1;
    }
    else {
      report (&a, &r);
      failed = 0;
    }
    vb_replicate_result_free (&r);
    /* With --interval a failed sync is retried at the next one: the
     * standby stays at its last point meanwhile. */
    if (!a.interval || *stop)
      break;
    pause_until (t0.tv_sec + t0.tv_nsec / 1e9 + a.interval, stop);
    if (*stop)
      break;
  }
  vb_replica_link_free (a.o.link);
  vb_log_set_sink (NULL, NULL);
  return failed ? VB_EXIT_FAIL : VB_EXIT_OK;
}
