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

enum { OPT_FORMAT = 256, OPT_INC, OPT_BF, OPT_BFMT, OPT_WORKERS, OPT_CA,
       OPT_INSECURE };

void
vb_cli_progress (void *op, uint64_t done, uint64_t total, double secs)
{
  char line[160];

  vb_progress_format (line, sizeof line, done, total, secs);
  fprintf (stderr, "\r%s%s", line, done >= total ? "\n" : "");
  fflush (stderr);
}

int
vb_cli_parse_workers (const char *s, unsigned *out)
{
  char *end;
  long n = strtol (s, &end, 10);

  if (*s == '\0' || *end || n < 1 || n > VB_CLIENT_MAX_WORKERS)
    return -1;
  *out = (unsigned) n;
  return 0;
}

static int
parse (int argc, char **argv, struct vb_download_opts *o, bool *quiet)
{
  static const struct option longopts[] = {
    { "format", required_argument, NULL, OPT_FORMAT },
    { "incremental", no_argument, NULL, OPT_INC },
    { "backing-file", required_argument, NULL, OPT_BF },
    { "backing-format", required_argument, NULL, OPT_BFMT },
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
    case OPT_FORMAT: o->format = optarg; break;
    case OPT_INC: o->incremental = true; break;
    case OPT_BF: o->backing_file = optarg; break;
    case OPT_BFMT: o->backing_format = optarg; break;
    case OPT_WORKERS:
      if (vb_cli_parse_workers (optarg, &o->c.workers) < 0)
        return -1;
      break;
    case OPT_CA: o->c.cafile = optarg; break;
    case OPT_INSECURE: o->c.insecure = true; break;
    case 'n': *quiet = true; break;
    case 'h': fputs (usage_text, stdout); return 1;
    default: return -1;
    }
  if (optind + 2 != argc || (o->c.cafile && o->c.insecure))
    return -1;
  return 0;
}

int
cmd_download (int argc, char **argv)
{
  struct vb_download_opts o = { 0 };
  bool quiet = false;
  int p = parse (argc, argv, &o, &quiet);

  if (p != 0) {
    if (p < 0)
      vb_cli_errorf ("download", "give URL and OUT, --workers 1-%d, and "
                     "--cafile or --insecure, not both: see 'virtback "
                     "download --help'", VB_CLIENT_MAX_WORKERS);
    return p < 0 ? VB_EXIT_USAGE : VB_EXIT_OK;
  }
  o.c.stop = vb_cli_stop_on_signals ();
  if (!quiet && isatty (STDERR_FILENO))
    o.c.progress = vb_cli_progress;
  if (vb_download (argv[optind], argv[optind + 1], &o) < 0) {
    if (o.c.progress)
      fputc ('\n', stderr);
    vb_cli_error ("download");
    return VB_EXIT_FAIL;
  }
  return VB_EXIT_OK;
}
