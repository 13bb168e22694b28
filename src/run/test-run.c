/* SPDX-License-Identifier: GPL-3.0-or-later */
/* test-run.c: the configuration, intervals, selection, the run's plan,
 * retention and the metrics text of `virtback run`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/test.h"
#include "run/chains.h"
#include "run/config.h"
#include "run/metrics.h"
#include "run/runner.h"
#include "run/select.h"

static char tmpdir[] = "/tmp/test-run.XXXXXX";

static const char *
write_conf (const char *text)
{
  static char path[256];

  snprintf (path, sizeof path, "%s/virtback.conf", tmpdir);
  REQUIRE (vb_write_file_atomic (tmpdir, "virtback.conf", text, strlen (text),
                                 0600) == 0);
  return path;
}

static void
test_example_config (void)
{
  struct vb_run_config c;
  const struct vb_run_job *j;
  const char *p = write_conf (
    "[global]\n"
    "output = /var/backup/virtback        ; each domain in OUTPUT/DOMAIN\n"
    "parallel = 2\n"
    "report = /var/lib/virtback/last-run.json\n"
    "metrics = /var/lib/prometheus/node-exporter/virtback.prom\n"
    "\n"
    "[job:nightly]\n"
    "domains = web-* db-1                 ; names or globs\n"
    "exclude = *-test\n"
    "level = auto\n"
    "full-interval = 7d\n"
    "keep-chains = 3\n"
    "compress = zstd\n"
    "[job:other]\n"
    "domains = a,b\n"
    "  c\n"
    "output = /srv/other\n"
    "freeze = no\n"
    "timeout = 2h\n");

  REQUIRE (vb_run_config_load (p, &c) == 0);
  CHECK (!strcmp (c.output, "/var/backup/virtback"));
  CHECK (c.parallel == 2);
  CHECK (!strcmp (c.report, "/var/lib/virtback/last-run.json"));
  CHECK (!strcmp (c.metrics, "/var/lib/prometheus/node-exporter/virtback.prom"));
  REQUIRE (c.njobs == 2);
  j = vb_run_config_job (&c, "nightly");
  REQUIRE (j);
  CHECK (vb_run_strv_len (j->domains) == 2);
  CHECK (!strcmp (j->domains[0], "web-*") && !strcmp (j->domains[1], "db-1"));
  CHECK (!strcmp (j->exclude[0], "*-test"));
  CHECK (j->level == VB_RUN_AUTO);
  CHECK (j->full_interval == 7 * 86400);
  CHECK (j->keep_chains == 3);
  CHECK (!strcmp (j->compress, "zstd"));
  CHECK (!strcmp (j->output, "/var/backup/virtback"));
  CHECK (j->freeze);
  j = vb_run_config_job (&c, "other");
  REQUIRE (j);
  CHECK (vb_run_strv_len (j->domains) == 3);   /* a continuation line */
  CHECK (!strcmp (j->output, "/srv/other"));
  CHECK (!j->freeze && j->timeout == 7200 && !j->compress);
  vb_run_config_free (&c);
}

/* Each bad config fails with file:line and the key. */
static void
bad_config (const char *text, const char *want)
{
  struct vb_run_config c;
  const char *p = write_conf (text);
  char full[512];

  snprintf (full, sizeof full, "%s%s", p, want);
  CHECK_ERR (vb_run_config_load (p, &c) == -1, full);
  CHECK (!strchr (vb_get_error (), '\n'));
  vb_run_config_free (&c);
}

static void
test_bad_configs (void)
{
  static const char job[] = "[job:j]\ndomains = a\n";
  char buf[256];

  bad_config ("[global]\noutput = /b\n\n[job:j]\ndomain = a\n",
              ":5: [job:j] unknown key 'domain'");
  bad_config ("[global]\noutput = /b\nparallel = 0\n",
              ":3: [global] key 'parallel': invalid number '0'");
  bad_config ("[global]\noutput = relative\n",
              ":2: [global] key 'output': 'relative' is not an absolute");
  bad_config ("[global]\noutput = /b\n[job:j]\ndomains = a\n"
              "full-interval = 7x\n",
              ":5: [job:j] key 'full-interval': invalid interval '7x'");
  bad_config ("[global]\noutput = /b\n[job:j]\ndomains = a\nlevel = weekly\n",
              ":5: [job:j] key 'level': invalid level 'weekly'");
  bad_config ("[global]\noutput = /b\n[job:j]\ndomains = a\nkeep-chains = 2\n"
              "keep-chains = 3\n", ":6: [job:j] key 'keep-chains' is given twice");
  bad_config ("[global]\noutput = /b\n[jobs]\ndomains = a\n",
              ":4: unknown section [jobs]");
  bad_config ("output = /b\n", ":1: key 'output' outside a section");
  bad_config ("[global]\noutput = /b\nthis is no key\n",
              ":3: not a [section] or a 'key = value' line");
  bad_config ("[global]\noutput = /b\n[job:j]\nlevel = full\n",
              ":4: [job:j] has no 'domains' key");
  snprintf (buf, sizeof buf, "[global]\nparallel = 2\n%s", job);
  bad_config (buf, ": [global] output is missing");
  bad_config ("[global]\noutput = /b\n", ": no [job:NAME] section");
}

static void
test_interval (void)
{
  uint64_t s;

  CHECK (vb_run_parse_interval ("90s", &s) == 0 && s == 90);
  CHECK (vb_run_parse_interval ("30m", &s) == 0 && s == 1800);
  CHECK (vb_run_parse_interval ("12h", &s) == 0 && s == 43200);
  CHECK (vb_run_parse_interval ("7d", &s) == 0 && s == 604800);
  CHECK (vb_run_parse_interval ("2w", &s) == 0 && s == 1209600);
  CHECK (vb_run_parse_interval ("1s", &s) == 0 && s == 1);
  CHECK_ERR (vb_run_parse_interval ("0s", &s) == -1, "invalid interval '0s'");
  CHECK (vb_run_parse_interval ("7", &s) == -1);
  CHECK (vb_run_parse_interval ("d", &s) == -1);
  CHECK (vb_run_parse_interval ("-1d", &s) == -1);
  CHECK (vb_run_parse_interval ("1.5h", &s) == -1);
  CHECK (vb_run_parse_interval ("7 d", &s) == -1);
  CHECK (vb_run_parse_interval ("99999999999999999999s", &s) == -1);
  CHECK (vb_run_parse_interval ("", &s) == -1);
}

static void
test_select (void)
{
  char *all[] = { "db-1", "db-2", "web-1", "web-2", "web-test", NULL };
  char *pats[] = { "web-*", "db-1", "web-1", "gone", "x-*", NULL };
  char *excl[] = { "*-test", NULL };
  CLEANUP_STRV char **m = NULL;
  CLEANUP_STRV char **u = NULL;

  REQUIRE (vb_run_select (pats, excl, all, &m, &u) == 0);
  REQUIRE (vb_run_strv_len (m) == 3);
  CHECK (!strcmp (m[0], "web-1") && !strcmp (m[1], "web-2") &&
         !strcmp (m[2], "db-1"));
  REQUIRE (vb_run_strv_len (u) == 2);
  CHECK (!strcmp (u[0], "gone") && !strcmp (u[1], "x-*"));
}

static void
test_chain_names (void)
{
  char name[VB_CHAIN_NAME_LEN];
  time_t t;

  vb_chain_name (1764624600, name);          /* 2025-12-01 21:30:00 UTC */
  CHECK (!strcmp (name, "20251201T213000Z"));
  CHECK (vb_chain_time (name, &t) == 0 && t == 1764624600);
  CHECK (vb_chain_time ("20251201T213000", &t) == -1);
  CHECK (vb_chain_time ("chain.1764624600", &t) == -1);
  CHECK (vb_chain_time ("2025120xT213000Z", &t) == -1);
  CHECK (vb_chain_time (".prune-20251201T213000Z", &t) == -1);
}

static void
test_retention (void)
{
  char *five[] = { "20250101T000000Z", "20250102T000000Z", "20250103T000000Z",
                   "20250104T000000Z", "20250105T000000Z", NULL };
  char *one[] = { "20250101T000000Z", NULL };
  char **v;

  v = vb_chains_to_prune (five, 3);
  REQUIRE (v && vb_run_strv_len (v) == 2);
  CHECK (!strcmp (v[0], five[0]) && !strcmp (v[1], five[1]));
  vb_run_strv_free (v);
  v = vb_chains_to_prune (five, 1);          /* the current one stays */
  REQUIRE (v && vb_run_strv_len (v) == 4);
  CHECK (!strcmp (v[3], five[3]));
  vb_run_strv_free (v);
  v = vb_chains_to_prune (five, 5);
  CHECK (v && !v[0]);
  vb_run_strv_free (v);
  v = vb_chains_to_prune (five, 0);          /* 0 keeps all */
  CHECK (v && !v[0]);
  vb_run_strv_free (v);
  v = vb_chains_to_prune (one, 1);
  CHECK (v && !v[0]);
  vb_run_strv_free (v);
}

static void
test_decide (void)
{
  char *chains[] = { "20250101T000000Z", "20250105T000000Z", NULL };
  char *none[] = { NULL };
  time_t t5 = 1736035200;                    /* 2025-01-05 00:00:00 */
  struct vb_run_plan p;

  REQUIRE (vb_run_decide (VB_RUN_AUTO, 86400, chains, t5 + 3600, &p) == 0);
  CHECK (!p.new_chain && !strcmp (p.level, "auto") &&
         !strcmp (p.chain, "20250105T000000Z"));
  REQUIRE (vb_run_decide (VB_RUN_AUTO, 86400, chains, t5 + 86400, &p) == 0);
  CHECK (p.new_chain && !strcmp (p.level, "full") &&
         !strcmp (p.chain, "20250106T000000Z"));
  REQUIRE (vb_run_decide (VB_RUN_AUTO, 0, chains, t5 + 86400 * 30, &p) == 0);
  CHECK (!p.new_chain);                      /* no interval: never by age */
  REQUIRE (vb_run_decide (VB_RUN_AUTO, 86400, chains, t5 - 7200, &p) == 0);
  CHECK (!p.new_chain);                      /* a clock set back */
  REQUIRE (vb_run_decide (VB_RUN_AUTO, 86400, none, t5, &p) == 0);
  CHECK (p.new_chain && !strcmp (p.level, "full"));
  REQUIRE (vb_run_decide (VB_RUN_INC, 0, chains, t5, &p) == 0);
  CHECK (!p.new_chain && !strcmp (p.level, "inc"));
  CHECK_ERR (vb_run_decide (VB_RUN_INC, 0, none, t5, &p) == -1,
             "no chain to continue");
  REQUIRE (vb_run_decide (VB_RUN_COPY, 0, chains, t5 + 1, &p) == 0);
  CHECK (p.new_chain && !strcmp (p.level, "copy"));
  CHECK_ERR (vb_run_decide (VB_RUN_FULL, 0, chains, t5, &p) == -1,
             "exists already");
}

static void
test_metrics_text (void)
{
  struct vb_metrics m = { 0 }, back;
  struct vb_run_result ok = { .domain = "web-1", .status = VB_RUN_OK,
                              .level = "full", .bytes = 1048576,
                              .seconds = 2.5, .finished = 1764624600 };
  struct vb_run_result bad = { .domain = "db \"1\"", .status = VB_RUN_FAILED,
                               .seconds = 0.25, .finished = 1764624700 };
  CLEANUP_FREE char *text = NULL;
  CLEANUP_FREE char *again = NULL;
  static const char want[] =
    "# HELP virtback_last_success_timestamp_seconds Time of the domain's last "
    "successful backup, in Unix seconds.\n"
    "# TYPE virtback_last_success_timestamp_seconds gauge\n"
    "virtback_last_success_timestamp_seconds{domain=\"web-1\"} 1764624600\n"
    "# HELP virtback_last_run_success 1 if the domain's last backup run "
    "succeeded, else 0.\n"
    "# TYPE virtback_last_run_success gauge\n"
    "virtback_last_run_success{domain=\"db \\\"1\\\"\"} 0\n"
    "virtback_last_run_success{domain=\"web-1\"} 1\n"
    "# HELP virtback_last_backup_bytes Bytes the domain's last backup wrote.\n"
    "# TYPE virtback_last_backup_bytes gauge\n"
    "virtback_last_backup_bytes{domain=\"db \\\"1\\\"\"} 0\n"
    "virtback_last_backup_bytes{domain=\"web-1\"} 1048576\n"
    "# HELP virtback_last_duration_seconds Seconds the domain's last backup "
    "run took.\n"
    "# TYPE virtback_last_duration_seconds gauge\n"
    "virtback_last_duration_seconds{domain=\"db \\\"1\\\"\"} 0.250\n"
    "virtback_last_duration_seconds{domain=\"web-1\"} 2.500\n";

  REQUIRE (vb_metrics_update (&m, &ok) == 0);
  REQUIRE (vb_metrics_update (&m, &bad) == 0);
  text = vb_metrics_format (&m);
  REQUIRE (text);
  CHECK (!strcmp (text, want));
  if (strcmp (text, want))
    fprintf (stderr, "got:\n%s", text);
  /* Read back, then web-1 fails: its success time and bytes stay. */
  REQUIRE (vb_metrics_parse (text, &back) == 0);
  REQUIRE (back.n == 2);
  ok.status = VB_RUN_FAILED;
  ok.level = NULL;
  ok.seconds = 1;
  ok.finished = 1764628200;
  REQUIRE (vb_metrics_update (&back, &ok) == 0);
  again = vb_metrics_format (&back);
  REQUIRE (again);
  CHECK (strstr (again, "virtback_last_success_timestamp_seconds{domain=\"web-1\"} 1764624600\n"));
  CHECK (strstr (again, "virtback_last_run_success{domain=\"web-1\"} 0\n"));
  CHECK (strstr (again, "virtback_last_backup_bytes{domain=\"web-1\"} 1048576\n"));
  CHECK (strstr (again, "virtback_last_duration_seconds{domain=\"web-1\"} 1.000\n"));
  CHECK (strstr (again, "virtback_last_run_success{domain=\"db \\\"1\\\"\"} 0\n"));
  vb_metrics_free (&m);
  vb_metrics_free (&back);
}

/* Prune in a real directory: the oldest go, through .prune-NAME. */
static void
test_prune_dir (void)
{
  char dom[300], p[400];
  const char *names[] = { "20250101T000000Z", "20250102T000000Z",
                          "20250103T000000Z" };
  CLEANUP_STRV char **pruned = NULL;
  CLEANUP_STRV char **left = NULL;
  int fd, fd2;

  snprintf (dom, sizeof dom, "%s/dom", tmpdir);
  for (int i = 0; i < 3; i++) {
    snprintf (p, sizeof p, "%s/%s/checkpoints", dom, names[i]);
    REQUIRE (vb_mkdir_p (p, 0700) == 0);
  }
  snprintf (p, sizeof p, "%s/.prune-20241231T000000Z/x", dom);
  REQUIRE (vb_mkdir_p (p, 0700) == 0);
  fd = vb_chains_lock (dom, false);
  REQUIRE (fd >= 0);
  CHECK_ERR ((fd2 = vb_chains_lock (dom, false)) == -1, "another virtback run");
  REQUIRE (vb_chains_prune (dom, 1, true, &pruned) == 0);
  CHECK (vb_run_strv_len (pruned) == 2);
  left = vb_chains_list (dom);
  CHECK (vb_run_strv_len (left) == 3);       /* a dry run removes nothing */
  vb_run_strv_free (STEAL (pruned));
  vb_run_strv_free (STEAL (left));
  REQUIRE (vb_chains_prune (dom, 2, false, &pruned) == 0);
  CHECK (vb_run_strv_len (pruned) == 1 && !strcmp (pruned[0], names[0]));
  left = vb_chains_list (dom);
  CHECK (vb_run_strv_len (left) == 2 && !strcmp (left[0], names[1]));
  snprintf (p, sizeof p, "%s/.prune-20241231T000000Z", dom);
  CHECK (access (p, F_OK) == -1);            /* the leftover is finished */
  vb_chains_unlock (fd);
}

int
main (void)
{
  REQUIRE (mkdtemp (tmpdir));
  test_example_config ();
  test_bad_configs ();
  test_interval ();
  test_select ();
  test_chain_names ();
  test_retention ();
  test_decide ();
  test_metrics_text ();
  test_prune_dir ();
  CLEANUP_FREE char *cmd = NULL;
  if (asprintf (&cmd, "rm -rf %s", tmpdir) > 0 && system (cmd) != 0)
    fprintf (stderr, "cannot remove %s\n", tmpdir);
  return vb_test_end ("test-run");
}
