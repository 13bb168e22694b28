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

static int
parse (int argc, char **argv, struct vb_client_opts *o)
{
  static const struct option longopts[] = {
    VB_CLI_CLIENT_LONGOPTS,
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  bool quiet = false;
  int c;

  while ((c = getopt_long (argc, argv, "nh", longopts, NULL)) != -1) {
    if (c == 'h')
      return fputs (usage_text, stdout), 1;
    if (vb_cli_client_opt (c, optarg, o, &quiet) <= 0)
      return -1;
  }
  return vb_cli_client_ready (argc, o, quiet);
}

int
cmd_upload (int argc, char **argv)
{
  struct vb_client_opts o = { 0 };
  int p = parse (argc, argv, &o);

  if (p != 0)
    return vb_cli_client_usage ("upload", "FILE and URL", p);
  return vb_cli_client_end ("upload", &o,
                            vb_upload (argv[optind], argv[optind + 1], &o));
}
