/* SPDX-License-Identifier: GPL-3.0-or-later */
/* virtback upload: a raw or qcow2 image (with its backing chain) to an
 * ovirt-imageio server; the work is in client/. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "client/client.h"
#include "common/error.h"

static const char usage_text[] =
  "Usage: virtback upload FILE URL [--workers N] [--cafile FILE | --insecure] [-n]\n"
  "\n"
  "Upload the image FILE (raw or qcow2; a qcow2 is read with its backing\n"
  "chain) to an imageio transfer URL (https://HOST:PORT/images/TICKET): its\n"
  "data extents with PUT, its zero extents with PATCH zero, then one flush.\n"
  "\n"
  "Options:\n"
  "      --workers N           connections, 1-8, at most what the server\n"
  "                            allows (default: 4)\n"
  "      --cafile FILE         verify the server's certificate with this CA\n"
  "                            (default: the system's CA store)\n"
  "      --insecure            do not verify the server's certificate\n"
  "  -n, --noprogress          no progress line\n"
  "  -h, --help                show this help\n";

enum { OPT_WORKERS = 256, OPT_CA, OPT_INSECURE };

static int
parse (int argc, char **argv, struct vb_client_opts *o, bool *quiet)
{
  static const struct option longopts[] = {
    { "workers", required_argument, NULL, OPT_WORKERS },
    { "cafile", required_argument, NULL, OPT_CA },
    { "insecure", no_argument, NULL, OPT_INSECURE },
    { "noprogress", no_argument, NULL, 'n' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  int c;

  while ((c = getopt_long (argc, argv, "nh", longopts, NULL)) != -1)
    switch (c) {
    case OPT_WORKERS:
      if (vb_cli_parse_workers (optarg, &o->workers) < 0)
        return -1;
      break;
    case OPT_CA: o->cafile = optarg; break;
    case OPT_INSECURE: o->insecure = true; break;
    case 'n': *quiet = true; break;
    case 'h': fputs (usage_text, stdout); return 1;
    default: return -1;
    }
  if (optind + 2 != argc || (o->cafile && o->insecure))
    return -1;
  return 0;
}

int
cmd_upload (int argc, char **argv)
{
  struct vb_client_opts o = { 0 };
  bool quiet = false;
  int p = parse (argc, argv, &o, &quiet);

  if (p != 0) {
    if (p < 0)
      vb_cli_errorf ("upload", "give FILE and URL, --workers 1-%d, and "
                     "--cafile or --insecure, not both: see 'virtback "
                     "upload --help'", VB_CLIENT_MAX_WORKERS);
    return p < 0 ? VB_EXIT_USAGE : VB_EXIT_OK;
  }
  o.stop = vb_cli_stop_on_signals ();
  if (!quiet && isatty (STDERR_FILENO))
    o.progress = vb_cli_progress;
  if (vb_upload (argv[optind], argv[optind + 1], &o) < 0) {
    if (o.progress)
      fputc ('\n', stderr);
    vb_cli_error ("upload");
    return VB_EXIT_FAIL;
  }
  return VB_EXIT_OK;
}
