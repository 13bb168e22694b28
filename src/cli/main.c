/* SPDX-License-Identifier: GPL-3.0-or-later */
/* virtback: the entry point dispatches to one file per subcommand. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/error.h"

static const struct {
  const char *name;
  int (*fn) (int, char **);
  const char *summary;
} commands[] = {
  { "backup",  cmd_backup,  "back up a libvirt domain's disks (full, inc, diff, copy)" },
  { "restore", cmd_restore, "rebuild disk images from a backup directory" },
  { "dump",    cmd_dump,    "show the metadata and chain of a backup directory" },
  { "verify",  cmd_verify,  "check every file of a backup directory end to end" },
  { "map",     cmd_map,     "serve a backup point as NBD disks" },
  { "mount",   cmd_mount,   "mount a backup point's guest filesystems read-only" },
  { "umount",  cmd_umount,  "end a virtback mount" },
  { "serve",   cmd_serve,   "serve images over HTTP with ovirt-imageio's API" },
  { "run",     cmd_run,     "back up the domains of a configuration's jobs" },
  { "prune",   cmd_prune,   "remove the oldest chains of a domain's directory" },
  { "job",     cmd_job,     "pull-backup jobs for other tools, read through serve" },
  { "download", cmd_download, "download an image from an imageio server" },
  { "upload",  cmd_upload,  "upload an image to an imageio server" },
  { "replicate", cmd_replicate, "keep a standby copy of a domain current on another host" },
  { "replica", cmd_replica, "on the standby host: status of a standby directory" },
  { "failover", cmd_failover, "on the standby host: start the standby domain" },
};

void
vb_cli_error (const char *cmd)
{
  fprintf (stderr, "virtback %s: %s\n", cmd, vb_get_error ());
}

void
vb_cli_errorf (const char *cmd, const char *fmt, ...)
{
  va_list ap;

  fprintf (stderr, "virtback %s: ", cmd);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputc ('\n', stderr);
}

static void
usage (FILE *fp)
{
  fprintf (fp, "Usage: virtback COMMAND [OPTIONS]\n\nCommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf (fp, "  %-9s %s\n", commands[i].name, commands[i].summary);
  fprintf (fp, "\nRun 'virtback COMMAND --help' for a command's options.\n");
}

int
main (int argc, char **argv)
{
  if (argc < 2) {
    usage (stderr);
    return VB_EXIT_USAGE;
  }
  if (!strcmp (argv[1], "--help") || !strcmp (argv[1], "-h")) {
    usage (stdout);
    return VB_EXIT_OK;
  }
  if (!strcmp (argv[1], "--version")) {
    printf ("virtback %s\n", VB_VERSION);
    return VB_EXIT_OK;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp (argv[1], commands[i].name))
      return commands[i].fn (argc - 1, argv + 1);
  fprintf (stderr, "virtback: unknown command '%s': run 'virtback --help'\n",
           argv[1]);
  return VB_EXIT_USAGE;
}
