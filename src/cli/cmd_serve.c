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
  "                      [--control-socket PATH] [--local-socket PATH] [--config FILE]\n"
  "\n"
  "Serve disk images over HTTP with ovirt-imageio's API, so that imageio's\n"
  "clients download, upload and checksum them unchanged.  Tickets, added on\n"
  "the control socket, name the image: nbd:unix:PATH[:exportname=NAME],\n"
  "file:///PATH or virtback:DIR?disk=DISK[&until=CHECKPOINT] (a backup point,\n"
  "read-only).  file:// tickets need their directory allowed in --config.\n"
  "The data API's URL is printed once the server is ready; it serves until\n"
  "SIGINT or SIGTERM.\n"
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
  "      --config FILE          settings from an INI file: [serve] listen, cert,\n"
  "                             key, ca, control_socket, local_socket (the options\n"
  "                             win); [file] allow = DIR, once per directory\n"
  "  -h, --help                 show this help\n";

enum { OPT_LISTEN = 256, OPT_CERT, OPT_KEY, OPT_CA, OPT_CONTROL, OPT_LOCAL,
       OPT_CONFIG };

static int
parse (int argc, char **argv, struct vb_serve_opts *o, const char **config)
{
  static const struct option longopts[] = {
    { "listen", required_argument, NULL, OPT_LISTEN },
    { "cert", required_argument, NULL, OPT_CERT },
    { "key", required_argument, NULL, OPT_KEY },
    { "ca", required_argument, NULL, OPT_CA },
    { "control-socket", required_argument, NULL, OPT_CONTROL },
    { "local-socket", required_argument, NULL, OPT_LOCAL },
    { "config", required_argument, NULL, OPT_CONFIG },
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
    case OPT_CONFIG: *config = optarg; break;
    case 'h': fputs (usage_text, stdout); return 1;
    default: return -1;
    }
  return optind == argc ? 0 : -1;
}

/* The options win over the file's settings. */
static void
merge (struct vb_serve_opts *o, const struct vb_serve_config *c)
{
  if (!o->listen) o->listen = c->listen;
  if (!o->cert && !o->key) {
    o->cert = c->cert;
    o->key = c->key;
  }
  if (!o->ca) o->ca = c->ca;
  if (!o->control_socket) o->control_socket = c->control_socket;
  if (!o->local_socket) o->local_socket = c->local_socket;
  o->file_dirs = c->file_dirs;
}

static void
sink (enum vb_log_level lvl, const char *msg, void *op)
{
  if (lvl != VB_LOG_DEBUG)
    fprintf (stderr, "virtback serve: %s%s\n",
             lvl == VB_LOG_WARN ? "warning: " : "", msg);
}

static int
run (struct vb_serve_opts *o)
{
  volatile sig_atomic_t *stop = vb_cli_stop_on_signals ();
  struct vb_serve *s;

  vb_log_set_sink (sink, NULL);
  if (!(s = vb_serve_start (o))) {
    vb_cli_error ("serve");
    return VB_EXIT_FAIL;
  }
  if (!o->cert && strncmp (vb_serve_url (s), "http://127.", 11))
    fprintf (stderr, "virtback serve: warning: without --cert the disk data "
             "crosses the network unencrypted\n");
  printf ("%s\n", vb_serve_url (s));
  fflush (stdout);
  vb_serve_run (s, stop);
  vb_serve_stop (s);
  return VB_EXIT_OK;
}

int
cmd_serve (int argc, char **argv)
{
  struct vb_serve_opts o = { 0 };
  struct vb_serve_config cfg = { 0 };
  const char *config = NULL;
  int p = parse (argc, argv, &o, &config), r;

  if (p == 0 && config && vb_serve_config_load (config, &cfg) < 0) {
    vb_cli_error ("serve");
    vb_serve_config_free (&cfg);
    return VB_EXIT_USAGE;
  }
  merge (&o, &cfg);
  if (p == 0 && (!o.cert != !o.key || (o.ca && !o.cert)))
    p = -1;
  if (p != 0) {
    if (p < 0)
      vb_cli_errorf ("serve", "give --cert and --key together (--ca only "
                     "with them) and no other arguments: see 'virtback "
                     "serve --help'");
    vb_serve_config_free (&cfg);
    return p < 0 ? VB_EXIT_USAGE : VB_EXIT_OK;
  }
  r = run (&o);
  vb_serve_config_free (&cfg);
  return r;
}
