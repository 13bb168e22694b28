/* SPDX-License-Identifier: GPL-3.0-or-later */
/* virtback map: serve a backup point as NBD disks until a signal; the
 * work is in map/. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/error.h"
#include "map/map.h"

static const char usage_text[] =
  "Usage: virtback map -i DIR [--until POINT] [-d DISK]\n"
  "                    (--socket PATH | --listen ADDR:PORT) [--tls [--tls-dir DIR]]\n"
  "                    [--writable [--overlay FILE.qcow2]]\n"
  "\n"
  "Serve the disks of one backup point over NBD, one export per disk named\n"
  "by its target, read straight from the backup files (any mix of plain, lz4\n"
  "and zstd files).  The NBD URIs are printed once the server is ready; it\n"
  "serves until SIGINT or SIGTERM.\n"
  "\n"
  "Options:\n"
  "  -i, --input DIR            backup directory\n"
  "      --until POINT          checkpoint, data file or diff epoch (default:\n"
  "                             the newest point)\n"
  "  -d, --disk DISK            serve this disk only\n"
  "      --socket PATH          listen on a unix socket (mode 0660, group\n"
  "                             libvirt-qemu)\n"
  "      --listen ADDR:PORT     listen on TCP\n"
  "      --tls                  require TLS (x509, as QEMU and nbdkit use it)\n"
  "      --tls-dir DIR          ca-cert.pem, server-cert.pem and\n"
  "                             server-key.pem (default: /etc/pki/qemu)\n"
  "      --writable             accept writes into a temporary overlay,\n"
  "                             dropped at exit; the backup never changes\n"
  "      --overlay FILE.qcow2   with --writable and one disk: keep the writes\n"
  "                             in this new qcow2 file, whose backing is the\n"
  "                             point served on FILE.qcow2.sock (served by\n"
  "                             qemu-nbd over a read-only map)\n"
  "  -h, --help                 show this help\n";

enum { OPT_UNTIL = 256, OPT_SOCKET, OPT_LISTEN, OPT_TLS, OPT_TLSDIR,
       OPT_WRITABLE, OPT_OVERLAY };

static int
parse (int argc, char **argv, struct vb_map_opts *o)
{
  static const struct option longopts[] = {
    { "input", required_argument, NULL, 'i' },
    { "until", required_argument, NULL, OPT_UNTIL },
    { "disk", required_argument, NULL, 'd' },
    { "socket", required_argument, NULL, OPT_SOCKET },
    { "listen", required_argument, NULL, OPT_LISTEN },
    { "tls", no_argument, NULL, OPT_TLS },
    { "tls-dir", required_argument, NULL, OPT_TLSDIR },
    { "writable", no_argument, NULL, OPT_WRITABLE },
    { "overlay", required_argument, NULL, OPT_OVERLAY },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  int c;

  while ((c = getopt_long (argc, argv, "i:d:h", longopts, NULL)) != -1)
    switch (c) {
    case 'i': o->input = optarg; break;
    case OPT_UNTIL: o->until = optarg; break;
    case 'd': o->disk = optarg; break;
    case OPT_SOCKET: o->socket = optarg; break;
    case OPT_LISTEN: o->listen = optarg; break;
    case OPT_TLS: o->tls = true; break;
    case OPT_TLSDIR: o->tls_dir = optarg; break;
    case OPT_WRITABLE: o->writable = true; break;
    case OPT_OVERLAY: o->overlay = optarg; break;
    case 'h': fputs (usage_text, stdout); return 1;
    default: return -1;
    }
  return optind == argc && o->input && !o->socket != !o->listen ? 0 : -1;
}

static void
log_line (void *op, const char *text)
{
  fprintf (stderr, "virtback map: %s\n", text);
}

int
cmd_map (int argc, char **argv)
{
  struct vb_map_opts o = { 0 };
  struct vb_map m;
  volatile sig_atomic_t *stop;
  int p = parse (argc, argv, &o), ret;

  if (p != 0) {
    if (p < 0)
      vb_cli_errorf ("map", "give -i DIR and one of --socket PATH or "
                     "--listen ADDR:PORT: see 'virtback map --help'");
    return p < 0 ? VB_EXIT_USAGE : VB_EXIT_OK;
  }
  stop = vb_cli_stop_on_signals ();
  if (o.listen && !o.tls)
    fprintf (stderr, "virtback map: warning: without --tls the disk data "
             "crosses the network unencrypted\n");
  if (vb_map_start (&o, &m) < 0) {
    vb_cli_error ("map");
    vb_map_stop (&m);
    return VB_EXIT_FAIL;
  }
  for (char **u = m.uris; *u; u++)
    printf ("%s\n", *u);
  fflush (stdout);
  ret = vb_map_run (&m, stop, log_line, NULL);
  if (ret < 0)
    vb_cli_error ("map");
  if (m.overlay_kept)
    fprintf (stderr, "virtback map: kept %s: the writes, over the backing "
             "nbd+unix:///%s?socket=%s; to read it whole, serve the point "
             "there again: virtback map -i %s%s%s -d %s --socket %s\n",
             m.overlay, m.disks[0], m.backsock, o.input,
             o.until ? " --until " : "", o.until ? o.until : "", m.disks[0],
             m.backsock);
  vb_map_stop (&m);
  return ret < 0 ? VB_EXIT_FAIL : VB_EXIT_OK;
}
