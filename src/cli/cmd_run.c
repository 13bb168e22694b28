/* SPDX-License-Identifier: GPL-3.0-or-later */
/* virtback run: the jobs of a configuration file; the work is in run/. */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/text.h"
#include "run/config.h"
#include "run/metrics.h"
#include "run/report.h"
#include "run/runner.h"
#include "run/select.h"

#define DEFAULT_CONFIG "/etc/virtback/virtback.conf"

static const char usage_text[] =
  "Usage: virtback run [-c FILE] [JOB...] [--dry-run] [--json]\n"
  "\n"
  "Back up every domain of the configuration's jobs (all of them, or the\n"
  "JOBs named), each into OUTPUT/DOMAIN, with retention, a JSON report and\n"
  "Prometheus metrics.\n"
  "\n"
  "Options:\n"
  "  -c, --config FILE   the configuration (default: " DEFAULT_CONFIG ")\n"
  "      --dry-run       print the domains, levels, chains and what would\n"
  "                      be pruned; change nothing\n"
  "      --json          print the report on stdout instead of the table\n"
  "  -h, --help          show this help\n";

struct run {
  struct vb_run_config cfg;
  struct vb_run_task *tasks;
  size_t ntasks;
  struct vb_run_result *missing;   /* patterns that matched nothing */
  size_t nmissing;
  bool dry_run, json;
};

static bool
have_task (const struct run *r, const char *domain)
{
  for (size_t i = 0; i < r->ntasks; i++)
    if (!strcmp (r->tasks[i].domain, domain))
      return true;
  return false;
}

static int
add_task (struct run *r, const struct vb_run_job *job, const char *domain)
{
  struct vb_run_task *nt;

  /* A domain of two jobs is backed up once, by the first. */
  if (have_task (r, domain)) {
    fprintf (stderr, "virtback run: %s (job %s): already in an earlier job "
             "of this run, backed up once\n", domain, job->name);
    return 0;
  }
  if (!(nt = realloc (r->tasks, (r->ntasks + 1) * sizeof *nt))) {
    vb_set_error ("out of memory");
    return -1;
  }
  r->tasks = nt;
  if (vb_run_task_init (&nt[r->ntasks], job, domain) < 0) {
    vb_run_task_clear (&nt[r->ntasks]);
    return -1;
  }
  r->ntasks++;
  return 0;
}

static int
add_missing (struct run *r, const struct vb_run_job *job, const char *pat)
{
  struct vb_run_result *nm = realloc (r->missing,
                                      (r->nmissing + 1) * sizeof *nm);
  struct vb_run_result *m;

  if (!nm) {
    vb_set_error ("out of memory");
    return -1;
  }
  r->missing = nm;
  m = &nm[r->nmissing++];
  *m = (struct vb_run_result) { .status = VB_RUN_MISSING,
                                .domain = strdup (pat),
                                .job = strdup (job->name),
                                .finished = time (NULL) };
  m->error = strchr (pat, '*') || strchr (pat, '?') || strchr (pat, '[') ?
    vb_xasprintf ("no defined domain matches '%s'", pat) :
    vb_xasprintf ("domain '%s' is not defined in libvirt", pat);
  return m->domain && m->job && m->error ? 0 : -1;
}

static int
add_job (struct run *r, const struct vb_run_job *job)
{
  CLEANUP_STRV char **all = vb_run_list_domains (job->uri);
  CLEANUP_STRV char **matched = NULL;
  CLEANUP_STRV char **unmatched = NULL;

  if (!all || vb_run_select (job->domains, job->exclude, all, &matched,
                             &unmatched) < 0)
    return -1;
  for (size_t i = 0; matched[i]; i++)
    if (add_task (r, job, matched[i]) < 0)
      return -1;
  for (size_t i = 0; unmatched[i]; i++)
    if (add_missing (r, job, unmatched[i]) < 0)
      return -1;
  return 0;
}

static const struct option longopts[] = {
  { "config", required_argument, NULL, 'c' },
  { "dry-run", no_argument, NULL, 'D' },
  { "json", no_argument, NULL, 'J' },
  { "help", no_argument, NULL, 'h' },
  { NULL, 0, NULL, 0 },
};

/* Options, the configuration and the tasks of the jobs asked for. */
static int
prepare (struct run *r, int argc, char **argv)
{
  const char *config = DEFAULT_CONFIG;
  int c;

  optind = 1;
  while ((c = getopt_long (argc, argv, "c:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'c': config = optarg; break;
    case 'D': r->dry_run = true; break;
    case 'J': r->json = true; break;
    case 'h': fputs (usage_text, stdout); exit (VB_EXIT_OK);
    default:
      vb_cli_errorf ("run", "see 'virtback run --help'");
      return VB_EXIT_USAGE;
    }
  }
  if (vb_run_config_load (config, &r->cfg) < 0) {
    vb_cli_error ("run");
    return VB_EXIT_USAGE;
  }
  for (int i = optind; i < argc; i++)
    if (!vb_run_config_job (&r->cfg, argv[i])) {
      vb_cli_errorf ("run", "%s has no job '%s': name a [job:NAME] of it",
                     config, argv[i]);
      return VB_EXIT_USAGE;
    }
  for (size_t j = 0; j < r->cfg.njobs; j++) {
    bool asked = optind == argc;
    for (int i = optind; i < argc; i++)
      asked |= !strcmp (argv[i], r->cfg.jobs[j].name);
    if (asked && add_job (r, &r->cfg.jobs[j]) < 0) {
      vb_cli_error ("run");
      return VB_EXIT_FAIL;
    }
  }
  return VB_EXIT_OK;
}

static void
print_list (const char *what, char *const *v)
{
  printf ("  %s:", what);
  for (size_t i = 0; v && v[i]; i++)
    printf (" %s", v[i]);
  printf ("%s\n", v && v[0] ? "" : " none");
}

static int
dry_run (struct run *r)
{
  time_t now = time (NULL);
  int ret = VB_EXIT_OK;

  for (size_t i = 0; i < r->ntasks; i++) {
    struct vb_run_task *t = &r->tasks[i];
    CLEANUP_STRV char **prune = NULL;
    if (vb_run_dry (t, now, &prune) < 0) {
      printf ("%s (job %s): fails: %s\n", t->domain, t->job->name,
              vb_get_error ());
      ret = VB_EXIT_FAIL;
      continue;
    }
    printf ("%s (job %s): level %s into %s/%s%s\n", t->domain, t->job->name,
            t->plan.level, t->domdir, t->plan.chain,
            t->plan.new_chain ? " (a new chain)" : "");
    print_list ("prune", prune);
  }
  for (size_t i = 0; i < r->nmissing; i++) {
    printf ("%s (job %s): missing: %s\n", r->missing[i].domain,
            r->missing[i].job, r->missing[i].error);
    ret = VB_EXIT_FAIL;
  }
  return ret;
}

/* A line per domain as it ends. */
static void
done_line (const struct vb_run_task *t, void *op)
{
  const struct vb_run_result *res = &t->res;
  char size[32];

  (void) op;
  vb_human_size (size, sizeof size, res->bytes);
  if (res->status == VB_RUN_OK)
    fprintf (stderr, "virtback run: %s: ok, %s, %s in %.1f s, chain %s%s\n",
             res->domain, res->level, size, res->seconds, res->chain,
             res->pruned && res->pruned[0] ? ", pruned older chains" : "");
  else
    fprintf (stderr, "virtback run: %s: failed: %s\n", res->domain,
             res->error ? res->error : "unknown error");
}

static void
table_row (const struct vb_run_result *res)
{
  char size[32];
  const char *chain = res->chain ? strrchr (res->chain, '/') : NULL;

  vb_human_size (size, sizeof size, res->bytes);
  printf ("%-20s %-12s %-8s %-5s %12s %8.1f  %s\n", res->domain,
          res->job ? res->job : "-", vb_run_status_name (res->status),
          res->level ? res->level : "-", size, res->seconds,
          chain ? chain + 1 : "-");
}

static void
summary_table (const struct run *r)
{
  printf ("%-20s %-12s %-8s %-5s %12s %8s  %s\n", "DOMAIN", "JOB", "STATUS",
          "LEVEL", "BYTES", "SECONDS", "CHAIN");
  for (size_t i = 0; i < r->ntasks; i++)
    table_row (&r->tasks[i].res);
  for (size_t i = 0; i < r->nmissing; i++)
    table_row (&r->missing[i]);
}

/* Every result, tasks first, for the report and the metrics. */
static struct vb_run_result *
all_results (const struct run *r, size_t *n)
{
  struct vb_run_result *v = calloc (r->ntasks + r->nmissing + 1, sizeof *v);

  *n = 0;
  for (size_t i = 0; v && i < r->ntasks; i++)
    v[(*n)++] = r->tasks[i].res;
  for (size_t i = 0; v && i < r->nmissing; i++)
    v[(*n)++] = r->missing[i];
  return v;
}

static int
write_metrics (const struct run *r, const struct vb_run_result *res, size_t n)
{
  struct vb_metrics m;
  int ret = -1;

  if (vb_metrics_load (r->cfg.metrics, &m) == 0) {
    size_t i = 0;
    while (i < n && vb_metrics_update (&m, &res[i]) == 0)
      i++;
    ret = i == n ? vb_metrics_write (r->cfg.metrics, &m) : -1;
  }
  vb_metrics_free (&m);
  return ret;
}

/* The report and the metrics; their failure fails the run. */
static int
write_outputs (const struct run *r, time_t started)
{
  size_t n;
  CLEANUP_FREE struct vb_run_result *res = all_results (r, &n);
  struct json_object *j = res ? vb_run_report (r->cfg.path, started,
                                               time (NULL), res, n) : NULL;
  int ret = 0;

  if (!j) {
    vb_cli_errorf ("run", "out of memory");
    return -1;
  }
  if (r->json)
    printf ("%s\n", json_object_to_json_string_ext (j, JSON_C_TO_STRING_PRETTY));
  if (r->cfg.report && vb_run_report_write (r->cfg.report, j) < 0) {
    vb_cli_error ("run");
    ret = -1;
  }
  if (r->cfg.metrics && write_metrics (r, res, n) < 0) {
    vb_cli_error ("run");
    ret = -1;
  }
  json_object_put (j);
  return ret;
}

/* One line naming every domain that failed. */
static int
verdict (const struct run *r)
{
  size_t n;
  CLEANUP_FREE struct vb_run_result *res = all_results (r, &n);
  size_t bad = 0;

  for (size_t i = 0; res && i < n; i++)
    bad += res[i].status != VB_RUN_OK;
  if (!res || !bad)
    return res ? 0 : -1;
  fprintf (stderr, "virtback run: %zu of %zu failed:", bad, n);
  for (size_t i = 0, k = 0; i < n; i++)
    if (res[i].status != VB_RUN_OK)
      fprintf (stderr, "%s %s (%s)", k++ ? "," : "", res[i].domain,
               vb_run_status_name (res[i].status));
  fprintf (stderr, ": see the lines above%s%s\n",
           r->cfg.report ? " and the report " : "",
           r->cfg.report ? r->cfg.report : "");
  return -1;
}

static void
run_free (struct run *r)
{
  for (size_t i = 0; i < r->ntasks; i++)
    vb_run_task_clear (&r->tasks[i]);
  free (r->tasks);
  for (size_t i = 0; i < r->nmissing; i++)
    vb_run_result_clear (&r->missing[i]);
  free (r->missing);
  vb_run_config_free (&r->cfg);
}

int
cmd_run (int argc, char **argv)
{
  struct run r = { 0 };
  time_t started = time (NULL);
  int ret = prepare (&r, argc, argv);

  if (ret == VB_EXIT_OK && r.dry_run)
    ret = dry_run (&r);
  else if (ret == VB_EXIT_OK) {
    for (size_t i = 0; i < r.nmissing; i++)
      fprintf (stderr, "virtback run: %s: missing: %s\n", r.missing[i].domain,
               r.missing[i].error);
    vb_run_tasks (r.tasks, r.ntasks, r.cfg.parallel,
                  vb_cli_stop_on_signals (), done_line, NULL);
    if (!r.json)
      summary_table (&r);
    if ((write_outputs (&r, started) < 0) | (verdict (&r) < 0))
      ret = VB_EXIT_FAIL;
  }
  run_free (&r);
  return ret;
}
