/* SPDX-License-Identifier: GPL-3.0-or-later */
/* virtback restore: options and the closing summary; the work is in
 * restore/restore.c. */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backupset/backupset.h"
#include "cli/cli.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "restore/restore.h"

static const char usage_text[] =
  "Usage: virtback restore -i DIR -o OUTDIR [OPTIONS]\n"
  "\n"
  "Rebuild disk images from a backup directory, as of its newest backup or of\n"
  "an earlier checkpoint.  Images are written as OUTDIR/<disk>.<format>.\n"
  "\n"
  "Options:\n"
  "  -i, --input DIR            backup directory\n"
  "  -o, --output DIR           where images and the VM definition go\n"
  "  -d, --disk LIST            comma separated disk targets to restore\n"
  "                             (default: every disk)\n"
  "      --until CHECKPOINT     restore the point of this checkpoint (or of\n"
  "                             this data file, or differential epoch)\n"
  "      --sequence LIST        apply exactly these comma separated data files\n"
  "      --format FORMAT        image format: qcow2 (default) or raw\n"
  "      --to PATH              write the one disk given with -d into this\n"
  "                             existing file or block device (a file\n"
  "                             keeps its format, raw or qcow2)\n"
  "  -c, --adjust-config        rewrite the VM definition for the restored\n"
  "                             images: new name, no UUID, no media\n"
  "  -N, --name NAME            name of the adjusted VM (default: restore_<name>)\n"
  "  -D, --define               define the adjusted VM in libvirt (implies -c)\n"
  "      --force                overwrite existing images in OUTDIR\n"
  "      --keep-partial         on failure keep the image as <image>.partial\n"
  "  -U, --uri URI              libvirt connection for -D\n"
  "                             (default: qemu:///system)\n"
  "  -h, --help                 show this help\n";

enum { OPT_UNTIL = 256, OPT_SEQUENCE, OPT_FORMAT, OPT_TO, OPT_FORCE,
       OPT_KEEP };

/* Split "a,b,c" into a NULL-terminated vector (empty items dropped). */
static char **
split_list (const char *s)
{
  CLEANUP_FREE char *copy = strdup (s);
  char **v = calloc (strlen (s) / 2 + 2, sizeof *v), *save = NULL, *tok;
  size_t n = 0;

  if (!copy || !v) {
    free (v);
    return NULL;
  }
  for (tok = strtok_r (copy, ",", &save); tok; tok = strtok_r (NULL, ",", &save))
    v[n++] = strdup (tok);
  return v;
}

static void
print_result (const struct vb_restore_result *r)
{
  for (size_t i = 0; r->notes && r->notes[i]; i++)
    fprintf (stderr, "virtback restore: warning: %s\n", r->notes[i]);
  for (size_t i = 0; i < r->ndisks; i++) {
    const struct vb_restore_disk *d = &r->disks[i];

    printf ("%s: restored to %s (%s, %" PRIu64 " bytes, %zu files, point %s, "
            "%" PRIu64 " bytes of data written)\n", d->disk, d->image,
            d->format, d->virtual_size, d->nfiles, d->point, d->data_bytes);
  }
  if (r->vmconfig)
    printf ("VM definition: %s\n", r->vmconfig);
  if (r->defined)
    printf ("defined domain %s\n", r->defined);
}

static int
parse (int argc, char **argv, struct vb_restore_opts *o)
{
  static const struct option longopts[] = {
    { "input", required_argument, NULL, 'i' },
    { "output", required_argument, NULL, 'o' },
    { "disk", required_argument, NULL, 'd' },
    { "until", required_argument, NULL, OPT_UNTIL },
    { "sequence", required_argument, NULL, OPT_SEQUENCE },
    { "format", required_argument, NULL, OPT_FORMAT },
    { "to", required_argument, NULL, OPT_TO },
    { "adjust-config", no_argument, NULL, 'c' },
    { "name", required_argument, NULL, 'N' },
    { "define", no_argument, NULL, 'D' },
    { "force", no_argument, NULL, OPT_FORCE },
    { "keep-partial", no_argument, NULL, OPT_KEEP },
    { "uri", required_argument, NULL, 'U' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  int c;

  while ((c = getopt_long (argc, argv, "i:o:d:cN:DU:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'i': o->input = optarg; break;
    case 'o': o->outdir = optarg; break;
    case 'd': vb_strv_free (o->disks); o->disks = split_list (optarg); break;
    case OPT_UNTIL: o->until = optarg; break;
    case OPT_SEQUENCE:
      vb_strv_free (o->sequence);
      o->sequence = split_list (optarg);
      break;
    case OPT_FORMAT: o->format = optarg; break;
    case OPT_TO: o->to = optarg; break;
    case 'c': o->adjust_config = true; break;
    case 'N': o->name = optarg; break;
    case 'D': o->define = o->adjust_config = true; break;
    case OPT_FORCE: o->force = true; break;
    case OPT_KEEP: o->keep_partial = true; break;
    case 'U': o->uri = optarg; break;
    case 'h': fputs (usage_text, stdout); return 1;
    default: return -1;
    }
  }
  return optind == argc ? 0 : -1;
}

int
cmd_restore (int argc, char **argv)
{
  struct vb_restore_opts o = { 0 };
  struct vb_restore_result r;
  int p = parse (argc, argv, &o), ret = VB_EXIT_USAGE;

  o.cancel = vb_cli_stop_on_signals ();
  if (p == 1)
    ret = VB_EXIT_OK;
  else if (p == -1)
    vb_cli_errorf ("restore", "run 'virtback restore --help' for the options");
  else if (!o.input || !o.outdir)
    vb_cli_errorf ("restore", "give the backup directory with -i DIR and the "
                   "output directory with -o OUTDIR");
  else if (o.until && o.sequence)
    vb_cli_errorf ("restore", "--until and --sequence exclude each other: "
                   "give one");
  else if (vb_restore (&o, &r) == -1) {
    vb_cli_error ("restore");
    ret = VB_EXIT_FAIL;
  }
  else {
    print_result (&r);
    vb_restore_result_clear (&r);
    ret = VB_EXIT_OK;
  }
  vb_strv_free (o.disks);
  vb_strv_free (o.sequence);
  return ret;
}
