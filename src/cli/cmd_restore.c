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
#include "remote/remote.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/parse.h"
#include "restore/instant.h"
#include "restore/restore.h"

static const char usage_text[] =
  "Usage: virtback restore -i DIR -o OUTDIR [OPTIONS]\n"
  "       virtback restore --instant [--resume] -i DIR -o OUTDIR [--until POINT]\n"
  "                        [-N NAME] [-d DISK] [-U URI] [--bandwidth SIZE]\n"
  "\n"
  "Rebuild disk images from a backup directory, as of its newest backup or of\n"
  "an earlier checkpoint.  Images are written as OUTDIR/<disk>.<format>.\n"
  "\n"
  "With --instant, run the point as a VM at once instead: its disks are qcow2\n"
  "overlays OUTDIR/<disk>.qcow2 read from the backup through a map, and the\n"
  "data moves into them while the guest runs (a block pull).  The command\n"
  "ends when the VM no longer needs the backup.  If it is interrupted, the VM\n"
  "keeps running on its overlays and the same command with --resume\n"
  "finishes the move.\n"
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
  "  -U, --uri URI              libvirt connection for -D and --instant\n"
  "                             (default: qemu:///system); with\n"
  "                             qemu+ssh://[USER@]HOST/system the images are\n"
  "                             written on HOST (-o is a directory there)\n"
  "      --nbd-ip ADDR          remote: address on HOST where qemu-nbd serves\n"
  "      --nbd-port P[-Q]       remote: port, or the first free one of P-Q\n"
  "                             (default: 10809-10908)\n"
  "      --tls                  remote: qemu-nbd with TLS (HOST's\n"
  "                             /etc/pki/qemu), written through nbds://\n"
  "      --tls-dir DIR          ca-cert.pem, client-cert.pem, client-key.pem\n"
  "                             (default: /etc/pki/qemu)\n"
  "      --timeout S            give up on a host silent for S seconds\n"
  "                             (default: 60)\n"
  "      --instant              define and start the VM (name -N, default\n"
  "                             restore_<name>) on overlays backed by the\n"
  "                             backup, then move the data into them\n"
  "      --resume               with --instant: finish the move of an\n"
  "                             interrupted run into OUTDIR\n"
  "      --bandwidth SIZE       with --instant: at most SIZE bytes a second\n"
  "                             per disk for the move (default: no limit)\n"
  "  -h, --help                 show this help\n";

enum { OPT_UNTIL = 256, OPT_SEQUENCE, OPT_FORMAT, OPT_TO, OPT_FORCE,
       OPT_KEEP, OPT_INSTANT, OPT_RESUME, OPT_BANDWIDTH, OPT_NBDIP,
       OPT_NBDPORT, OPT_TLS, OPT_TLSDIR, OPT_TIMEOUT };

/* --instant and its options, beside the plain restore's. */
struct instant_args {
  bool instant, resume;
  const char *bandwidth;
};

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
parse (int argc, char **argv, struct vb_restore_opts *o,
       struct instant_args *ia)
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
    { "instant", no_argument, NULL, OPT_INSTANT },
    { "resume", no_argument, NULL, OPT_RESUME },
    { "bandwidth", required_argument, NULL, OPT_BANDWIDTH },
    { "nbd-ip", required_argument, NULL, OPT_NBDIP },
    { "nbd-port", required_argument, NULL, OPT_NBDPORT },
    { "tls", no_argument, NULL, OPT_TLS },
    { "tls-dir", required_argument, NULL, OPT_TLSDIR },
    { "timeout", required_argument, NULL, OPT_TIMEOUT },
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
    case OPT_INSTANT: ia->instant = true; break;
    case OPT_RESUME: ia->resume = true; break;
    case OPT_BANDWIDTH: ia->bandwidth = optarg; break;
    case OPT_NBDIP: o->nbd_ip = optarg; break;
    case OPT_NBDPORT:
      if (vb_parse_port_range (optarg, &o->nbd_port_lo, &o->nbd_port_hi) < 0)
        return -1;
      break;
    case OPT_TLS: o->tls = true; break;
    case OPT_TLSDIR: o->tls_dir = optarg; break;
    case OPT_TIMEOUT: {
      uint64_t v;
      if (vb_parse_uint (optarg, 86400, &v) < 0 || v < 5)
        return -1;
      o->timeout = v;
      break;
    }
    case 'h': fputs (usage_text, stdout); return 1;
    default: return -1;
    }
  }
  return optind == argc ? 0 : -1;
}

static void
instant_line (void *op, const char *text)
{
  (void) op;
  fprintf (stderr, "virtback restore: %s\n", text);
}

/* The options of a plain restore that --instant has no use for. */
static const char *
instant_conflict (const struct vb_restore_opts *o)
{
  return o->sequence ? "--sequence" : o->format ? "--format"
    : o->to ? "--to" : o->define ? "-D" : o->adjust_config ? "-c"
    : o->force ? "--force" : o->keep_partial ? "--keep-partial"
    : o->disks && o->disks[0] && o->disks[1] ? "-d with several disks"
    : NULL;
}

static int
run_instant (const struct vb_restore_opts *o, const struct instant_args *ia)
{
  struct vb_instant_opts io = {
    .input = o->input, .outdir = o->outdir, .until = o->until,
    .disk = o->disks ? o->disks[0] : NULL, .name = o->name, .uri = o->uri,
    .resume = ia->resume, .cancel = o->cancel, .progress = instant_line,
  };
  struct vb_instant_result r;
  const char *bad = instant_conflict (o);

  if (bad) {
    vb_cli_errorf ("restore", "--instant takes no %s: see 'virtback restore "
                   "--help'", bad);
    return VB_EXIT_USAGE;
  }
  if (ia->bandwidth && vb_parse_size (ia->bandwidth, UINT64_MAX / 2,
                                      &io.bandwidth) < 0) {
    vb_cli_error ("restore");
    return VB_EXIT_USAGE;
  }
  if (vb_instant (&io, &r) < 0) {
    vb_cli_error ("restore");
    return VB_EXIT_FAIL;
  }
  printf ("%s domain %s: it runs on its own disks", ia->resume
          ? "finished the interrupted instant recovery of" : "restored",
          r.name);
  for (char **ov = r.overlays; *ov; ov++)
    printf ("%s%s", ov == r.overlays ? " " : ", ", *ov);
  printf (", and no longer needs the backup\n");
  vb_instant_result_clear (&r);
  return VB_EXIT_OK;
}

/* Remote and without --tls: the images cross the network in the clear. */
static int
warn_plain (const struct vb_restore_opts *o)
{
  struct vb_remote r;
  int remote = vb_remote_parse (o->uri, &r);

  if (remote < 0) {
    vb_cli_error ("restore");
    return -1;
  }
  if (remote && !o->tls)
    fprintf (stderr, "virtback restore: warning: the disk data crosses the "
             "network to %s unencrypted: use --tls to encrypt it\n",
             o->nbd_ip ? o->nbd_ip : r.host);
  vb_remote_clear (&r);
  return 0;
}

int
cmd_restore (int argc, char **argv)
{
  struct vb_restore_opts o = { 0 };
  struct instant_args ia = { 0 };
  struct vb_restore_result r;
  int p = parse (argc, argv, &o, &ia), ret = VB_EXIT_USAGE;

  o.cancel = vb_cli_stop_on_signals ();
  if (p == 1)
    ret = VB_EXIT_OK;
  else if (p == -1)
    vb_cli_errorf ("restore", "run 'virtback restore --help' for the options");
  else if ((ia.resume || ia.bandwidth) && !ia.instant)
    vb_cli_errorf ("restore", "--resume and --bandwidth go with --instant");
  else if (ia.instant && ia.resume && !o.outdir)
    vb_cli_errorf ("restore", "give the output directory of the interrupted "
                   "run with -o OUTDIR");
  else if (ia.instant && (ia.resume || o.input) && o.outdir)
    ret = run_instant (&o, &ia);
  else if (!o.input || !o.outdir)
    vb_cli_errorf ("restore", "give the backup directory with -i DIR and the "
                   "output directory with -o OUTDIR");
  else if (o.until && o.sequence)
    vb_cli_errorf ("restore", "--until and --sequence exclude each other: "
                   "give one");
  else if ((o.tls || o.tls_dir || o.nbd_port_lo) && !o.nbd_ip)
    vb_cli_errorf ("restore", "--tls, --tls-dir and --nbd-port go with "
                   "--nbd-ip (a restore onto the host of a qemu+ssh:// -U)");
  else if (warn_plain (&o) < 0)
    ret = VB_EXIT_USAGE;
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
