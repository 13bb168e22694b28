/* SPDX-License-Identifier: GPL-3.0-or-later */
/* virtback backup: options, progress, summary; the work is in backup/. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "backup/backup.h"
#include "backupset/backupset.h"
#include "cli/cli.h"
#include "common/cleanup.h"
#include "common/clock.h"
#include "common/error.h"
#include "target/target.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/text.h"
#include "remote/remote.h"

struct ui {
  const char *outdir;
  struct vb_tfile *log;        /* the run's log file, in the repository */
  bool progress;               /* redraw per-disk lines on the terminal */
  bool quiet;                  /* --json: keep stderr for warnings only */
  size_t drawn;                /* progress lines on screen */
};

static const char usage_text[] =
  "Usage: virtback backup -d DOMAIN -o DIR [-l copy|full|inc|diff|auto] [OPTIONS]\n"
  "\n"
  "Back up the disks of a running libvirt domain with changed block tracking.\n"
  "\n"
  "Options:\n"
  "  -d, --domain NAME          domain to back up\n"
  "  -o, --output DIR           backup directory (created if missing); \"-\"\n"
  "                             streams a zip archive to stdout (copy, full)\n"
  "  -l, --level LEVEL          copy, full, inc, diff or auto (default: copy)\n"
  "  -t, --type TYPE            stream (default) or raw (full and copy only)\n"
  "  -z, --compress[=LEVEL]     compress data (lz4: default level 2, as\n"
  "                             virtnbdbackup; zstd: default level 3)\n"
  "      --compress-method M    lz4 (default, readable by virtnbdbackup) or\n"
  "                             zstd (smaller, compressed on all cores)\n"
  "  -x, --exclude LIST         comma separated disk targets to leave out\n"
  "  -i, --include LIST         comma separated disk targets to back up alone\n"
  "  -r, --raw                  include raw-format disks (full and copy only)\n"
  "  -w, --worker N             disks backed up in parallel (default: all)\n"
  "  -S, --scratchdir DIR       where the private socket and scratch directory\n"
  "                             is made (default: /var/tmp)\n"
  "  -C, --checkpointdir DIR    where checkpoint XML is kept\n"
  "                             (default: DIR/checkpoints)\n"
  "      --checkpoint-prefix P  checkpoint names are P.N (default: virtback)\n"
  "      --group GROUP          files 0640 and directories 0750 owned by GROUP\n"
  "                             (default: 0600 and 0700)\n"
  "  -p, --printonly            print the data to save per disk, write nothing\n"
  "  -k, --kill-stale           end a stale backup job of virtback's on the\n"
  "                             domain first\n"
  "      --force                with -k, end any backup job on the domain\n"
  "      --peer-compatible      write every file so that virtnbdrestore\n"
  "                             restores it exactly (inc/diff: zeroed ranges\n"
  "                             as data); implied by --checkpoint-prefix\n"
  "                             virtnbdbackup\n"
  "  -U, --uri URI              libvirt connection (default: qemu:///system);\n"
  "                             qemu+ssh://[USER@]HOST[:PORT]/system backs up\n"
  "                             a domain on HOST, its disks over NBD on TCP\n"
  "      --nbd-ip ADDR          address on the domain's host where QEMU (or\n"
  "                             qemu-nbd, shut off) serves the disks\n"
  "      --nbd-port P[-Q]       port, or the first free one of P-Q\n"
  "                             (default: 10809-10908)\n"
  "      --tls                  serve the disks with TLS (the host's QEMU\n"
  "                             x509 set-up) and read them with nbds://\n"
  "      --tls-dir DIR          ca-cert.pem, client-cert.pem, client-key.pem\n"
  "                             (default: /etc/pki/qemu)\n"
  "      --timeout S            give up on a host silent for S seconds\n"
  "                             (default: 60)\n"
  "  -n, --noprogress           no progress lines\n"
  "      --no-freeze            do not freeze guest filesystems\n"
  "      --json                 print a JSON summary on stdout at the end\n"
  "      --request-size SIZE    NBD read size, a power of two from 4K to 32M\n"
  "                             (default 256K)\n"
  "      --inflight N           NBD reads in flight per disk (default 64)\n"
  "      --connections N        NBD connections per disk (default 4, 1 with\n"
  "                             --tls)\n"
  "  -h, --help                 show this help\n";

/* One line to the log, handed to the storage at once so that a killed
 * run's log still says how far it got.  The thread's error is kept: a
 * line may be logged about it.  A failed write sticks to the file and is
 * reported when the log is ended. */
static void
log_line (struct vb_tfile *log, const char *level, const char *msg)
{
  struct vb_error saved;
  struct timespec now;
  char ts[32];
  CLEANUP_FREE char *line = NULL;

  vb_error_save (&saved);
  clock_gettime (CLOCK_REALTIME, &now);
  strftime (ts, sizeof ts, "%Y-%m-%d %H:%M:%S", localtime (&now.tv_sec));
  line = vb_xasprintf ("%s.%03ld %s %s\n", ts, now.tv_nsec / 1000000,
                       level, msg);
  if (line && vb_tfile_write (log, line, strlen (line)) == 0)
    vb_tfile_flush (log);
  vb_error_restore (&saved);
}

static void
log_sink (enum vb_log_level lvl, const char *msg, void *opaque)
{
  struct ui *ui = opaque;
  static const char *names[] = { "DEBUG", "INFO", "WARNING" };

  if (ui->log)
    log_line (ui->log, names[lvl], msg);
  if (lvl == VB_LOG_DEBUG || (ui->quiet && lvl == VB_LOG_INFO))
    return;
  if (ui->drawn) {             /* keep progress lines below the notes */
    fprintf (stderr, "\033[%zuA\033[J", ui->drawn);
    ui->drawn = 0;
  }
  fprintf (stderr, "virtback: %s%s\n", lvl == VB_LOG_WARN ? "warning: " : "",
           msg);
}

/* The log is a file of the run's target; it keeps the target open after
 * the run, for the lines that come after it (the failure). */
static int
open_log (void *op, struct vb_target *t, enum vb_level level)
{
  struct ui *ui = op;
  CLEANUP_FREE char *name = vb_bset_log_name (level, time (NULL));

  if (!name || !(ui->log = vb_target_append (t, name)))
    return -1;
  return 0;
}

/* Make the log durable; a log that could not be written is worth a
 * warning, never a failed backup. */
static void
close_log (struct ui *ui)
{
  struct vb_tfile *log = ui->log;

  if (!log)
    return;
  ui->log = NULL;
  if (vb_tfile_commit (log) < 0)
    fprintf (stderr, "virtback: warning: the log file is incomplete: %s\n",
             vb_get_error ());
}


static void
progress_line (const struct vb_disk_result *d, double elapsed)
{
  uint64_t done = __atomic_load_n (&d->done, __ATOMIC_RELAXED);
  double secs = d->finished ? d->seconds : elapsed;
  /* The total grows while the map runs ahead of the copy. */
  uint64_t total = __atomic_load_n (&d->total, __ATOMIC_RELAXED);
  double pct = total ? 100.0 * done / total : 100.0;
  char a[32], b[32];

  vb_human_size (a, sizeof a, done);
  vb_human_size (b, sizeof b, total);
  fprintf (stderr, "%-6s [ %6.2f%% ] %s of %s, %.2f seconds, %.2f MiB/s\n",
           d->disk, pct, a, b, secs,
           secs > 0 ? done / secs / 1048576.0 : 0.0);
}

static void
tick (void *op, const struct vb_backup_result *r)
{
  struct ui *ui = op;
  double elapsed = vb_mono () - r->start;

  if (!ui->progress)
    return;
  vb_log_lock ();
  if (ui->drawn)
    fprintf (stderr, "\033[%zuA", ui->drawn);
  for (size_t i = 0; i < r->ndisks; i++)
    progress_line (&r->disks[i], elapsed);
  ui->drawn = r->ndisks;
  vb_log_unlock ();
}

static void
print_estimate (const struct vb_backup_result *r)
{
  uint64_t total = 0;
  char a[32], b[32];

  for (size_t i = 0; i < r->ndisks; i++) {
    vb_human_size (a, sizeof a, r->disks[i].total);
    vb_human_size (b, sizeof b, r->disks[i].virtual_size);
    printf ("%s: %" PRIu64 " bytes (%s) of data to save, virtual size %s\n",
            r->disks[i].disk, r->disks[i].total, a, b);
    total += r->disks[i].total;
  }
  vb_human_size (a, sizeof a, total);
  printf ("total: %" PRIu64 " bytes (%s)\n", total, a);
}

static void
print_json (const struct vb_backup_opts *o, const struct vb_backup_result *r)
{
  struct json_object *j = json_object_new_object ();
  struct json_object *disks = json_object_new_array ();

  json_object_object_add (j, "domain", json_object_new_string (o->domain));
  json_object_object_add (j, "level",
                          json_object_new_string (vb_level_name (r->level)));
  json_object_object_add (j, "checkpoint", r->checkpoint ?
                          json_object_new_string (r->checkpoint) : NULL);
  json_object_object_add (j, "parent", r->parent ?
                          json_object_new_string (r->parent) : NULL);
  json_object_object_add (j, "output", json_object_new_string (o->outdir));
  for (size_t i = 0; i < r->ndisks; i++) {
    const struct vb_disk_result *d = &r->disks[i];
    struct json_object *x = json_object_new_object ();
    json_object_object_add (x, "disk", json_object_new_string (d->disk));
    json_object_object_add (x, "file", d->file ?
                            json_object_new_string (d->file) : NULL);
    json_object_object_add (x, "virtualSize", json_object_new_int64 (d->virtual_size));
    json_object_object_add (x, "bytesRead", json_object_new_int64 (d->done));
    json_object_object_add (x, "bytesWritten", json_object_new_int64 (d->written));
    json_object_object_add (x, "dataExtents", json_object_new_int64 (d->data_extents));
    json_object_object_add (x, "zeroExtents", json_object_new_int64 (d->zero_extents));
    json_object_object_add (x, "seconds", json_object_new_double (d->seconds));
    json_object_array_add (disks, x);
  }
  json_object_object_add (j, "disks", disks);
  json_object_object_add (j, "seconds", json_object_new_double (vb_mono () - r->start));
  printf ("%s\n", json_object_to_json_string_ext (j, JSON_C_TO_STRING_PRETTY));
  json_object_put (j);
}

/* Split "a,b" into a vector. */
static char **
split_list (const char *s)
{
  size_t n = 1;
  char **v, *copy, *tok, *save;

  for (const char *p = s; *p; p++)
    n += *p == ',';
  v = calloc (n + 1, sizeof *v);
  copy = strdup (s);
  if (!v || !copy) {
    free (v);
    free (copy);
    return NULL;
  }
  n = 0;
  for (tok = strtok_r (copy, ",", &save); tok; tok = strtok_r (NULL, ",", &save))
    v[n++] = strdup (tok);
  free (copy);
  return v;
}

enum { OPT_PREFIX = 256, OPT_JSON, OPT_NOFREEZE, OPT_REQ, OPT_INFLIGHT,
       OPT_METHOD, OPT_GROUP, OPT_CONNS, OPT_PEER, OPT_FORCE, OPT_NBDIP,
       OPT_NBDPORT, OPT_TLS, OPT_TLSDIR, OPT_TIMEOUT };

static const struct option longopts[] = {
  { "domain", required_argument, NULL, 'd' },
  { "output", required_argument, NULL, 'o' },
  { "level", required_argument, NULL, 'l' },
  { "type", required_argument, NULL, 't' },
  { "compress", optional_argument, NULL, 'z' },
  { "compress-method", required_argument, NULL, OPT_METHOD },
  { "exclude", required_argument, NULL, 'x' },
  { "include", required_argument, NULL, 'i' },
  { "raw", no_argument, NULL, 'r' },
  { "worker", required_argument, NULL, 'w' },
  { "scratchdir", required_argument, NULL, 'S' },
  { "checkpointdir", required_argument, NULL, 'C' },
  { "checkpoint-prefix", required_argument, NULL, OPT_PREFIX },
  { "group", required_argument, NULL, OPT_GROUP },
  { "printonly", no_argument, NULL, 'p' },
  { "kill-stale", no_argument, NULL, 'k' },
  { "force", no_argument, NULL, OPT_FORCE },
  { "peer-compatible", no_argument, NULL, OPT_PEER },
  { "uri", required_argument, NULL, 'U' },
  { "noprogress", no_argument, NULL, 'n' },
  { "no-freeze", no_argument, NULL, OPT_NOFREEZE },
  { "json", no_argument, NULL, OPT_JSON },
  { "request-size", required_argument, NULL, OPT_REQ },
  { "inflight", required_argument, NULL, OPT_INFLIGHT },
  { "connections", required_argument, NULL, OPT_CONNS },
  { "nbd-ip", required_argument, NULL, OPT_NBDIP },
  { "nbd-port", required_argument, NULL, OPT_NBDPORT },
  { "tls", no_argument, NULL, OPT_TLS },
  { "tls-dir", required_argument, NULL, OPT_TLSDIR },
  { "timeout", required_argument, NULL, OPT_TIMEOUT },
  { "help", no_argument, NULL, 'h' },
  { NULL, 0, NULL, 0 },
};

struct args {
  struct vb_backup_opts o;
  struct vb_target_policy policy;  /* from --group */
  bool json, noprogress;
  bool level_given;            /* -z with an explicit level */
};

static int
bad (const char *msg, const char *arg)
{
  vb_cli_errorf ("backup", "%s '%s': see 'virtback backup --help'", msg, arg);
  return -1;
}

/* -z takes an optional level: "-z", "-z5", "--compress=5" and "-z 5". */
static int
parse_compress (struct args *a, int argc, char **argv)
{
  uint64_t v;
  const char *s = optarg;

  if (!s && optind < argc && vb_parse_uint (argv[optind], 16, &v) == 0)
    s = argv[optind++];
  a->o.compress = true;
  a->o.compress_level = 2;
  if (s) {
    if (vb_parse_uint (s, 22, &v) < 0)
      return bad ("invalid compression level (lz4 0-16, zstd 1-22)", s);
    a->o.compress_level = v;
    a->level_given = true;
  }
  return 0;
}

/* libvirt allows [a-zA-Z0-9_-][a-zA-Z0-9_.-]* in a checkpoint name.  A
 * leading '-' is refused as well: the name is an argument of qemu-img,
 * which would take it for an option.  A '.' inside is unambiguous: names
 * are <prefix>.<digits>, and the digits hold no '.'.  The length keeps
 * <disk>.inc.<prefix>.<N>.data.partial within one file name. */
#define PREFIX_MAX 128

static bool
prefix_ok (const char *p)
{
  size_t n = strlen (p);

  if (n == 0 || n > PREFIX_MAX || *p == '.' || *p == '-')
    return false;
  return strspn (p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                 "0123456789_-.") == n;
}

static int
parse_remote_opt (struct args *a, int c)
{
  uint64_t v;

  switch (c) {
  case OPT_NBDIP: a->o.nbd_ip = optarg; return 0;
  case OPT_NBDPORT:
    if (vb_parse_port_range (optarg, &a->o.nbd_port_lo,
                             &a->o.nbd_port_hi) < 0)
      return bad ("invalid port or port range (P or P-Q, 1-65535)", optarg);
    return 0;
  case OPT_TLS: a->o.tls = true; return 0;
  case OPT_TLSDIR: a->o.tls_dir = optarg; return 0;
  case OPT_TIMEOUT:
    if (vb_parse_uint (optarg, 86400, &v) < 0 || v < 5)
      return bad ("invalid timeout (5 to 86400 seconds)", optarg);
    a->o.timeout = v;
    return 0;
  default:
    return -1;
  }
}

static int
parse_opt (struct args *a, int c, int argc, char **argv)
{
  uint64_t v;

  switch (c) {
  case 'd': a->o.domain = optarg; return 0;
  case 'o': a->o.outdir = optarg; return 0;
  case 'l':
    return vb_level_parse (optarg, &a->o.level) < 0 ?
      bad ("invalid level (copy, full, inc, diff, auto)", optarg) : 0;
  case 't':
    if (strcmp (optarg, "stream") && strcmp (optarg, "raw"))
      return bad ("invalid type (stream, raw)", optarg);
    a->o.raw_output = !strcmp (optarg, "raw");
    return 0;
  case 'z': return parse_compress (a, argc, argv);
  case 'x': return (a->o.exclude = split_list (optarg)) ? 0 : -1;
  case 'i': return (a->o.include = split_list (optarg)) ? 0 : -1;
  case 'r': a->o.include_raw = true; return 0;
  case 'w':
    if (vb_parse_uint (optarg, 64, &v) < 0 || v == 0)
      return bad ("invalid worker count (1-64)", optarg);
    a->o.workers = v;
    return 0;
  case 'S': a->o.scratchdir = optarg; return 0;
  case 'C': a->o.cptdir = optarg; return 0;
  case OPT_PREFIX:
    if (!prefix_ok (optarg)) {
      vb_cli_errorf ("backup", "invalid checkpoint prefix '%s': use letters, "
                     "digits, '_', '-' and '.' (a letter, digit or '_' "
                     "first), at most %d characters", optarg, PREFIX_MAX);
      return -1;
    }
    a->o.prefix = optarg;
    return 0;
  case 'p': a->o.print_only = true; return 0;
  case 'k': a->o.kill_stale = true; return 0;
  case OPT_FORCE: a->o.force = true; return 0;
  case OPT_PEER: a->o.peer_compatible = true; return 0;
  case 'U': a->o.uri = optarg; return 0;
  case 'n': a->noprogress = true; return 0;
  case OPT_NOFREEZE: a->o.no_freeze = true; return 0;
  case OPT_GROUP: {
    struct group *g = getgrnam (optarg);
    if (!g)
      return bad ("unknown group", optarg);
    a->policy = (struct vb_target_policy) { 0640, 0750, g->gr_gid };
    return 0;
  }
  case OPT_METHOD:
    if (strcmp (optarg, "lz4") && strcmp (optarg, "zstd"))
      return bad ("invalid compression method (lz4, zstd)", optarg);
    a->o.zstd = !strcmp (optarg, "zstd");
    return 0;
  case OPT_JSON: a->json = true; return 0;
  case OPT_REQ:
    if (vb_parse_size (optarg, 32u << 20, &v) < 0 || v < 4096 ||
        (v & (v - 1)))
      return bad ("invalid request size (a power of two, 4K to 32M)", optarg);
    a->o.req_size = v;
    return 0;
  case OPT_CONNS:
    if (vb_parse_uint (optarg, 8, &v) < 0 || v == 0)
      return bad ("invalid number of connections (1-8)", optarg);
    a->o.conns = v;
    return 0;
  case OPT_INFLIGHT:
    if (vb_parse_uint (optarg, 256, &v) < 0 || v == 0)
      return bad ("invalid number of requests in flight (1-256)", optarg);
    a->o.inflight = v;
    return 0;
  default:
    return parse_remote_opt (a, c);
  }
}

static int
parse_args (struct args *a, int argc, char **argv)
{
  int c;

  a->o.level = VB_LEVEL_COPY;
  optind = 1;
  while ((c = getopt_long (argc, argv, "d:o:l:t:z::x:i:rw:S:C:pkU:nh",
                           longopts, NULL)) != -1) {
    if (c == 'h') {
      fputs (usage_text, stdout);
      exit (VB_EXIT_OK);
    }
    if (c == '?' || parse_opt (a, c, argc, argv) < 0) {
      if (c == '?')
        vb_cli_errorf ("backup", "see 'virtback backup --help'");
      return -1;
    }
  }
  if (optind < argc)
    return bad ("unexpected argument", argv[optind]);
  if (!a->o.domain || (!a->o.outdir && !a->o.print_only)) {
    vb_cli_errorf ("backup", "-d DOMAIN and -o DIR are required: see "
                   "'virtback backup --help'");
    return -1;
  }
  if (a->o.raw_output && (a->o.level == VB_LEVEL_INC ||
                          a->o.level == VB_LEVEL_DIFF)) {
    vb_cli_errorf ("backup", "-t raw works with full and copy backups only");
    return -1;
  }
  if ((a->o.tls || a->o.tls_dir || a->o.nbd_port_lo) && !a->o.nbd_ip) {
    vb_cli_errorf ("backup", "--tls, --tls-dir and --nbd-port serve the "
                   "disks on TCP: give --nbd-ip too");
    return -1;
  }
  if (a->o.tls_dir && !a->o.tls) {
    vb_cli_errorf ("backup", "--tls-dir holds the client certificate of "
                   "--tls: give --tls too");
    return -1;
  }
  if (a->o.force && !a->o.kill_stale) {
    vb_cli_errorf ("backup", "--force only widens -k: use -k --force");
    return -1;
  }
  if (a->o.zstd && !a->o.compress)
    a->o.compress = true;      /* --compress-method zstd implies -z */
  if (a->o.zstd && !a->level_given)
    a->o.compress_level = 3;
  if (!a->o.zstd && a->o.compress_level > 16) {
    vb_cli_errorf ("backup", "lz4 levels go up to 16");
    return -1;
  }
  if (!a->o.outdir)
    a->o.outdir = ".";
  if (!strcmp (a->o.outdir, "-") && (a->json || a->o.raw_output)) {
    vb_cli_errorf ("backup", "-o - writes the archive to stdout: it cannot "
                   "be combined with --json or -t raw");
    return -1;
  }
  if (!strcmp (a->o.outdir, "-") && isatty (STDOUT_FILENO)) {
    vb_cli_errorf ("backup", "-o - writes a zip archive to stdout: redirect "
                   "it to a file or a pipe");
    return -1;
  }
  return 0;
}

/* A dropped ssh session sends SIGHUP, and SIGQUIT would dump core: each
 * ends the run as SIGINT does, through the cleanup, never by default. */
int
cmd_backup (int argc, char **argv)
{
  struct args a = { .policy = VB_TARGET_POLICY_DEFAULT };
  struct ui ui = { 0 };
  struct vb_backup_result r;
  int ret;

  if (parse_args (&a, argc, argv) < 0)
    return VB_EXIT_USAGE;
  ui.outdir = a.o.outdir;
  ui.progress = !a.noprogress && !a.o.print_only && isatty (STDERR_FILENO);
  ui.quiet = a.json;
  vb_log_set_sink (log_sink, &ui);
  a.o.cancel = vb_cli_stop_on_signals ();
  a.o.policy = &a.policy;
  a.o.started = strcmp (a.o.outdir, "-") ? open_log : NULL;
  a.o.tick = tick;
  a.o.op = &ui;
  ret = vb_backup_run (&a.o, &r);
  tick (&ui, &r);
  if (ret < 0) {
    vb_log (VB_LOG_DEBUG, "failed: %s", vb_get_error ());
    vb_cli_error ("backup");
  }
  else if (a.o.print_only)
    print_estimate (&r);
  else if (a.json)
    print_json (&a.o, &r);
  else
    fprintf (stderr, "virtback: backup finished: %s\n", a.o.outdir);
  vb_log_set_sink (NULL, NULL);
  close_log (&ui);
  vb_backup_result_free (&r);
  vb_cleanup_strv (&a.o.exclude);
  vb_cleanup_strv (&a.o.include);
  return ret < 0 ? VB_EXIT_FAIL : VB_EXIT_OK;
}
