/* SPDX-License-Identifier: GPL-3.0-or-later */
/* virtback serve: ovirt-imageio's data and control APIs over HTTP until a
 * signal; the work is in serve/. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/error.h"
#include "common/log.h"
#include "serve/serve.h"

static const char usage_text[] =
  "Usage: virtback serve [--listen ADDR:PORT] [--cert FILE --key FILE [--ca FILE]]\n"
  "                      [--control-socket PATH] [--local-socket PATH]\n"
  "\n"
  "Serve disk images over HTTP with ovirt-imageio's API, so that imageio's\n"
  "clients download, upload and checksum them unchanged.  Tickets, added on\n"
  "the control socket, name the image: nbd:unix:PATH[:exportname=NAME],\n"
  "file:///PATH or virtback:DIR?disk=DISK[&until=CHECKPOINT] (a backup point,\n"
  "read-only).  The data API's URL is printed once the server is ready; it\n"
  "serves until SIGINT or SIGTERM.\n"
  "\n"
  "Options:\n"
  "      --listen ADDR:PORT     the data API's address (default: "
  VB_SERVE_LISTEN ")\n"
  "      --cert FILE            serve HTTPS with this PEM certificate\n"
  "      --key FILE             and this PEM private key\n"
  "      --ca FILE              PEM certificates sent after --cert (its chain)\n"
  "      --control-socket PATH  the control API's unix socket, mode 0600\n"
  "                             (default: " VB_SERVE_CONTROL ")\n"
  "      --local-socket PATH    serve the data API on this unix socket too;\n"
  "                             OPTIONS advertises it to local clients\n"
  "  -h, --help                 show this help\n";

enum { OPT_LISTEN = 256, OPT_CERT, OPT_KEY, OPT_CA, OPT_CONTROL, OPT_LOCAL };

static int
parse (int argc, char **argv, struct vb_serve_opts *o)
{
  static const struct option longopts[] = {
    { "listen", required_argument, NULL, OPT_LISTEN },
    { "cert", required_argument, NULL, OPT_CERT },
    { "key", required_argument, NULL, OPT_KEY },
    { "ca", required_argument, NULL, OPT_CA },
    { "control-socket", required_argument, NULL, OPT_CONTROL },
    { "local-socket", required_argument, NULL, OPT_LOCAL },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  int c;

  while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1)
    switch (c) {
    case OPT_LISTEN: o->listen = optarg; break;
    case OPT_CERT: o->cert = optarg; break;
    case OPT_KEY: o->key = optarg; break;
    case OPT_CA: o->ca = optarg; break;
    case OPT_CONTROL: o->control_socket = optarg; break;
    case OPT_LOCAL: o->local_socket = optarg; break;
    case 'h': fputs (usage_text, stdout); return 1;
    default: return -1;
    }
  if (optind != argc || !o->cert != !o->key || (o->ca && !o->cert))
    return -1;
  return 0;
}

static void
sink (enum vb_log_level lvl, const char *msg, void *op)
{
  if (lvl != VB_LOG_DEBUG)
    fprintf (stderr, "virtback serve: %s%s\n",
             lvl == VB_LOG_WARN ? "warning: " : "", msg);
}

int
cmd_serve (int argc, char **argv)
{
  struct vb_serve_opts o = { 0 };
  volatile sig_atomic_t *stop;
  struct vb_serve *s;
  int p = parse (argc, argv, &o);

  if (p != 0) {
    if (p < 0)
      vb_cli_errorf ("serve", "give --cert and --key together (--ca only "
                     "with them) and no other arguments: see 'virtback "
                     "serve --help'");
    return p < 0 ? VB_EXIT_USAGE : VB_EXIT_OK;
  }
  stop = vb_cli_stop_on_signals ();
  vb_log_set_sink (sink, NULL);
  if (!(s = vb_serve_start (&o))) {
    vb_cli_error ("serve");
    return VB_EXIT_FAIL;
  }
  if (!o.cert && strncmp (vb_serve_url (s), "http://127.", 11))
    fprintf (stderr, "virtback serve: warning: without --cert the disk data "
             "crosses the network unencrypted\n");
  printf ("%s\n", vb_serve_url (s));
  fflush (stdout);
  vb_serve_run (s, stop);
  vb_serve_stop (s);
  return VB_EXIT_OK;
}
