/* SPDX-License-Identifier: GPL-3.0-or-later */
/* virtback verify: check a backup directory end to end; the work is in
 * restore/verify.c.  With --boot, boot a point as an isolated VM and ask
 * its guest agent instead (restore/boot.c): one result line (or --json a
 * document) on stdout, exit 0 only when the agent answered.  Problems go to stdout, one per line, so they can be
 * collected; the verdict is the exit code and the last line.  Whether the
 * domain still holds the chain's checkpoints is no verdict on the files: it
 * goes to stderr after them, and never changes the exit code. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/error.h"
#include "common/parse.h"
#include "restore/boot.h"
#include "restore/restore.h"

static const char usage_text[] =
  "Usage: virtback verify -i DIR [-U URI] [-C DIR]\n"
  "       virtback verify --boot -i DIR [--until POINT] [--timeout S]\n"
  "                       [--exec COMMAND] [--json] [-U URI]\n"
  "\n"
  "Read every data file of a backup directory end to end and check the frames,\n"
  "the lz4 checksums, the trailer, the stored .chksum files and the chain.\n"
  "Prints one line per problem and exits 0 only when there is none.  Then asks\n"
  "libvirt whether the domain still holds the chain's checkpoints, and warns\n"
  "when the next incremental into DIR would be refused (exit code unchanged).\n"
  "\n"
  "With --boot, boot the point as an isolated, transient VM (new name and\n"
  "UUID, no network, no host devices, disks on throwaway overlays over the\n"
  "backup) and wait for its guest agent: guest-ping, then guest-get-fsinfo,\n"
  "then --exec.  Then the VM is destroyed; nothing stays defined and the\n"
  "backup files are not written.  Exits 0 only when the agent answered (and\n"
  "the command exited 0).\n"
  "\n"
  "Options:\n"
  "  -i, --input DIR            backup directory\n"
  "  -U, --uri URI              libvirt connection URI (default qemu:///system)\n"
  "  -C, --checkpointdir DIR    saved checkpoint XML (default DIR/checkpoints)\n"
  "      --boot                 boot the point and ask its guest agent\n"
  "      --until POINT          with --boot: checkpoint, data file or diff\n"
  "                             epoch (default: the newest point)\n"
  "      --timeout S            with --boot: seconds from the VM's start to\n"
  "                             the agent's answer and the command's end\n"
  "                             (default 300)\n"
  "      --exec COMMAND         with --boot: run /bin/sh -c COMMAND in the\n"
  "                             guest through the agent; it must exit 0\n"
  "      --json                 with --boot: the result as a JSON document\n"
  "  -h, --help                 show this help\n";

struct boot_args {
  bool boot, json;
  const char *until, *exec, *timeout;
};

static void
progress_line (void *op, const char *line)
{
  fprintf (stderr, "virtback verify: %s\n", line);
}

static void
print_result (const struct vb_boot_result *r)
{
  printf ("OK: booted %s as %s; the guest agent answered after %.1f s; "
          "filesystems:", r->point, r->domain, r->agent_seconds);
  for (size_t i = 0; i < r->nfs; i++)
    printf ("%s %s (%s, %s)", i ? "," : "", r->fs[i].mountpoint,
            r->fs[i].type, r->fs[i].name);
  if (!r->nfs)
    printf (" none");
  if (r->exec_ran)
    printf ("; the command exited %d", r->exec_status);
  printf ("\n");
}

static int
verify_boot (const char *input, const char *uri, const struct boot_args *a)
{
  struct vb_boot_opts o = { .input = input, .uri = uri, .until = a->until,
                            .timeout = 300, .exec = a->exec,
                            .progress = progress_line };
  struct vb_boot_result r;
  uint64_t t;
  int ret;

  if (a->timeout && (vb_parse_uint (a->timeout, 86400, &t) < 0 || t == 0)) {
    vb_cli_errorf ("verify", "--timeout %s: give whole seconds, 1 to 86400",
                   a->timeout);
    return VB_EXIT_USAGE;
  }
  if (a->timeout)
    o.timeout = (int) t;
  o.cancel = vb_cli_stop_on_signals ();
  ret = vb_verify_boot (&o, &r);
  if (a->json && ret >= 0) {
    struct json_object *j = vb_boot_result_json (&r, input, ret ? vb_get_error ()
                                                 : NULL);
    printf ("%s\n", json_object_to_json_string_ext (j, JSON_C_TO_STRING_PRETTY));
    json_object_put (j);
  }
  else if (ret == 0)
    print_result (&r);
  fflush (stdout);
  if (ret != 0)
    vb_cli_error ("verify");
  vb_boot_result_clear (&r);
  return ret == 0 ? VB_EXIT_OK : VB_EXIT_FAIL;
}

static void
checkpoint_note (const char *input, const char *uri, const char *cptdir)
{
  char *msg = NULL;
  int r = vb_verify_checkpoint (input, uri, cptdir, &msg);

  if (r == 1)
    vb_cli_errorf ("verify", "warning: %s", msg ? msg : "");
  else if (r == 2)
    vb_cli_errorf ("verify", "note: could not check whether the domain "
                   "still holds the chain's checkpoints: %s",
                   msg ? msg : "");
  free (msg);
}

enum { OPT_BOOT = 256, OPT_UNTIL, OPT_TIMEOUT, OPT_EXEC, OPT_JSON };

/* The files of INPUT checked, one line each problem, then whether the
 * checkpoints of URI's domain still match the chain. */
static int
verify_files (const char *input, const char *uri, const char *cptdir)
{
  struct vb_verify_report rep;
  int ret;

  if (vb_verify (input, &rep) == -1) {
    vb_cli_error ("verify");
    return VB_EXIT_FAIL;
  }
  for (size_t i = 0; i < rep.nnotes; i++)
    printf ("note: %s\n", rep.notes[i]);
  for (size_t i = 0; i < rep.nproblems; i++)
    printf ("FAIL: %s\n", rep.problems[i]);
  if (rep.nproblems == 0)
    printf ("OK: %zu data files of %zu disks, %" PRIu64 " bytes read, "
            "%zu checksum files matched, chain consistent\n",
            rep.nfiles, rep.ndisks, rep.bytes, rep.nchksums);
  else {
    fflush (stdout);
    vb_cli_errorf ("verify", "%zu problems in %s: restoring from it will "
                   "fail where they are", rep.nproblems, input);
  }
  ret = rep.nproblems ? VB_EXIT_FAIL : VB_EXIT_OK;
  vb_verify_report_clear (&rep);
  fflush (stdout);
  checkpoint_note (input, uri, cptdir);
  return ret;
}

int
cmd_verify (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "input", required_argument, NULL, 'i' },
    { "uri", required_argument, NULL, 'U' },
    { "checkpointdir", required_argument, NULL, 'C' },
    { "boot", no_argument, NULL, OPT_BOOT },
    { "until", required_argument, NULL, OPT_UNTIL },
    { "timeout", required_argument, NULL, OPT_TIMEOUT },
    { "exec", required_argument, NULL, OPT_EXEC },
    { "json", no_argument, NULL, OPT_JSON },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  struct boot_args a = { 0 };
  const char *input = NULL, *uri = NULL, *cptdir = NULL;
  int c;

  while ((c = getopt_long (argc, argv, "i:U:C:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'i': input = optarg; break;
    case 'U': uri = optarg; break;
    case 'C': cptdir = optarg; break;
    case OPT_BOOT: a.boot = true; break;
    case OPT_UNTIL: a.until = optarg; break;
    case OPT_TIMEOUT: a.timeout = optarg; break;
    case OPT_EXEC: a.exec = optarg; break;
    case OPT_JSON: a.json = true; break;
    case 'h': fputs (usage_text, stdout); return VB_EXIT_OK;
    default:
      vb_cli_errorf ("verify", "run 'virtback verify --help' for the options");
      return VB_EXIT_USAGE;
    }
  }
  if (!input || optind != argc) {
    vb_cli_errorf ("verify", "give the backup directory with -i DIR and "
                   "nothing else");
    return VB_EXIT_USAGE;
  }
  if (!a.boot && (a.until || a.timeout || a.exec || a.json)) {
    vb_cli_errorf ("verify", "--until, --timeout, --exec and --json go with "
                   "--boot: see 'virtback verify --help'");
    return VB_EXIT_USAGE;
  }
  if (a.boot)
    return verify_boot (input, uri, &a);
  return verify_files (input, uri, cptdir);
}
