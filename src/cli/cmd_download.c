/* SPDX-License-Identifier: GPL-3.0-or-later */
/* virtback download: an image from an ovirt-imageio server (virtback serve
 * or oVirt's daemon) into a sparse raw or qcow2 file; the work is in
 * client/. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "client/client.h"
#include "common/error.h"

static const char usage_text[] =
  "Usage: virtback download URL OUT [--format raw|qcow2]\n"
  "                         [--incremental --backing-file PREV [--backing-format F]]\n"
  "                         [--workers N] [--cafile FILE | --insecure] [-n]\n"
  "\n"
  "Download the image of an imageio transfer URL (https://HOST:PORT/images/TICKET)\n"
  "into OUT, reading only its data extents over several connections.  OUT is\n"
  "written sparse under a temporary name and renamed once complete.\n"
  "\n"
  "Options:\n"
  "      --format FMT          raw or qcow2 (default: qcow2)\n"
  "      --incremental         read only the dirty extents (a dirty ticket) into a\n"
  "                            qcow2 whose backing file is PREV\n"
  "      --backing-file PREV   the previous image of the chain (relative names\n"
  "                            are taken from OUT's directory, as qemu does)\n"
  "      --backing-format F    PREV's format (default: qcow2)\n"
  "      --workers N           connections, 1-8, at most what the server\n"
  "                            allows (default: 4)\n"
  "      --cafile FILE         verify the server's certificate with this CA\n"
  "                            (default: the system's CA store)\n"
  "      --insecure            do not verify the server's certificate\n"
  "  -n, --noprogress          no progress line\n"
  "  -h, --help                show this help\n";

enum { OPT_FORMAT = 256, OPT_INC, OPT_BF, OPT_BFMT };

static void
progress (void *op, uint64_t done, uint64_t total, double secs)
{
  char line[160];

  vb_progress_format (line, sizeof line, done, total, secs);
  fprintf (stderr, "\r%s%s", line, done >= total ? "\n" : "");
  fflush (stderr);
}

static int
parse_workers (const char *s, unsigned *out)
{
  char *end;
  long n = strtol (s, &end, 10);

  if (*s == '\0' || *end || n < 1 || n > VB_CLIENT_MAX_WORKERS)
    return -1;
  *out = (unsigned) n;
  return 0;
}

int
vb_cli_client_opt (int c, const char *arg, struct vb_client_opts *o,
                   bool *quiet)
{
  switch (c) {
  case VB_CLI_OPT_WORKERS: return parse_workers (arg, &o->workers) < 0 ? -1 : 1;
  case VB_CLI_OPT_CAFILE: o->cafile = arg; return 1;
  case VB_CLI_OPT_INSECURE: o->insecure = true; return 1;
  case 'n': *quiet = true; return 1;
  default: return 0;
  }
}

int
vb_cli_client_usage (const char *cmd, const char *args, int p)
{
  if (p > 0)
    return VB_EXIT_OK;
  vb_cli_errorf (cmd, "give %s, --workers 1-%d, and --cafile or --insecure, "
                 "not both: see 'virtback %s --help'", args,
                 VB_CLIENT_MAX_WORKERS, cmd);
  return VB_EXIT_USAGE;
}

int
vb_cli_client_ready (int argc, struct vb_client_opts *o, bool quiet)
{
  if (optind + 2 != argc || (o->cafile && o->insecure))
    return -1;
  o->stop = vb_cli_stop_on_signals ();
  if (!quiet && isatty (STDERR_FILENO))
    o->progress = progress;
  return 0;
}

int
vb_cli_client_end (const char *cmd, const struct vb_client_opts *o, int r)
{
  if (r == 0)
    return VB_EXIT_OK;
  if (o->progress)
    fputc ('\n', stderr);
  vb_cli_error (cmd);
  return VB_EXIT_FAIL;
}

static int
parse (int argc, char **argv, struct vb_download_opts *o)
{
  static const struct option longopts[] = {
    { "format", required_argument, NULL, OPT_FORMAT },
    { "incremental", no_argument, NULL, OPT_INC },
    { "backing-file", required_argument, NULL, OPT_BF },
    { "backing-format", required_argument, NULL, OPT_BFMT },
    VB_CLI_CLIENT_LONGOPTS,
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  bool quiet = false;
  int c, k;

  while ((c = getopt_long (argc, argv, "nh", longopts, NULL)) != -1) {
    if ((k = vb_cli_client_opt (c, optarg, &o->c, &quiet)) < 0)
      return -1;
    if (k > 0)
      continue;
    switch (c) {
    case OPT_FORMAT: o->format = optarg; break;
    case OPT_INC: o->incremental = true; break;
    case OPT_BF: o->backing_file = optarg; break;
    case OPT_BFMT: o->backing_format = optarg; break;
    case 'h': fputs (usage_text, stdout); return 1;
    default: return -1;
    }
  }
  return vb_cli_client_ready (argc, &o->c, quiet);
}

int
cmd_download (int argc, char **argv)
{
  struct vb_download_opts o = { 0 };
  int p = parse (argc, argv, &o);

  if (p != 0)
    return vb_cli_client_usage ("download", "URL and OUT", p);
  return vb_cli_client_end ("download", &o.c,
                            vb_download (argv[optind], argv[optind + 1], &o));
}
