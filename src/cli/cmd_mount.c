/* SPDX-License-Identifier: GPL-3.0-or-later */
/* virtback mount / umount: a backup point's guest files, read-only, under
 * a directory; the work is in mount/. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/error.h"
#include "mount/mount.h"

static const char mount_usage[] =
  "Usage: virtback mount -i DIR [--until POINT] [-d DISK] MOUNTPOINT\n"
  "\n"
  "Mount the guest filesystems of one backup point read-only under the\n"
  "empty directory MOUNTPOINT, one directory per filesystem named after it\n"
  "(sda1, vg0-root, or sda for a filesystem on a whole disk), without\n"
  "restoring the disks.  The filesystems are parsed by libguestfs inside its\n"
  "own small appliance VM, never by the host kernel; MOUNTPOINT is a FUSE\n"
  "mount.  The command prints each directory and its type and returns once\n"
  "the files can be read; a background process serves them until\n"
  "'virtback umount MOUNTPOINT'.  Build the appliance once with\n"
  "scripts/guestfs-appliance.sh.\n"
  "\n"
  "Options:\n"
  "  -i, --input DIR            backup directory\n"
  "      --until POINT          checkpoint, data file or diff epoch (default:\n"
  "                             the newest point)\n"
  "  -d, --disk DISK            this disk only\n"
  "  -h, --help                 show this help\n";

static const char umount_usage[] =
  "Usage: virtback umount MOUNTPOINT\n"
  "\n"
  "End a 'virtback mount': unmount MOUNTPOINT and stop its appliance and its\n"
  "NBD server; returns once nothing of it is left.\n"
  "\n"
  "Options:\n"
  "  -h, --help                 show this help\n";

enum { OPT_UNTIL = 256 };

static int
parse (int argc, char **argv, struct vb_mount_opts *o)
{
  static const struct option longopts[] = {
    { "input", required_argument, NULL, 'i' },
    { "until", required_argument, NULL, OPT_UNTIL },
    { "disk", required_argument, NULL, 'd' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  int c;

  while ((c = getopt_long (argc, argv, "i:d:h", longopts, NULL)) != -1)
    switch (c) {
    case 'i': o->input = optarg; break;
    case OPT_UNTIL: o->until = optarg; break;
    case 'd': o->disk = optarg; break;
    case 'h': fputs (mount_usage, stdout); return 1;
    default: return -1;
    }
  if (optind + 1 != argc || !o->input)
    return -1;
  o->mountpoint = argv[optind];
  return 0;
}

struct out {
  const char *mp;
};

static void
mounted (void *op, const char *dir, const char *fstype)
{
  struct out *out = op;

  printf ("%s/%s %s\n", out->mp, dir, fstype);
}

static void
warn (void *op, const char *text)
{
  fprintf (stderr, "virtback mount: warning: %s\n", text);
}

int
cmd_mount (int argc, char **argv)
{
  struct vb_mount_opts o = { 0 };
  struct out out;
  struct vb_mount_report r = { mounted, warn, &out };
  int p = parse (argc, argv, &o);

  if (p != 0) {
    if (p < 0)
      vb_cli_errorf ("mount", "give -i DIR and one MOUNTPOINT: see "
                     "'virtback mount --help'");
    return p < 0 ? VB_EXIT_USAGE : VB_EXIT_OK;
  }
  out.mp = o.mountpoint;
  if (vb_mount_start (&o, &r, vb_cli_stop_on_signals ()) < 0) {
    vb_cli_error ("mount");
    return VB_EXIT_FAIL;
  }
  fflush (stdout);
  return VB_EXIT_OK;
}

int
cmd_umount (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  int c;

  while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1) {
    if (c != 'h') {
      vb_cli_errorf ("umount", "see 'virtback umount --help'");
      return VB_EXIT_USAGE;
    }
    fputs (umount_usage, stdout);
    return VB_EXIT_OK;
  }
  if (optind + 1 != argc) {
    vb_cli_errorf ("umount", "give one MOUNTPOINT: see "
                   "'virtback umount --help'");
    return VB_EXIT_USAGE;
  }
  if (vb_mount_stop (argv[optind]) < 0) {
    vb_cli_error ("umount");
    return VB_EXIT_FAIL;
  }
  return VB_EXIT_OK;
}
