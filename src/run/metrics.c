/* SPDX-License-Identifier: GPL-3.0-or-later */
/* metrics.c: Prometheus text for node_exporter's textfile collector. */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "run/metrics.h"

enum { M_SUCCESS_TS, M_RUN_SUCCESS, M_BYTES, M_DURATION, M_COUNT };

static const struct { const char *name, *help; } families[M_COUNT] = {
  { "virtback_last_success_timestamp_seconds",
    "Time of the domain's last successful backup, in Unix seconds." },
  { "virtback_last_run_success",
    "1 if the domain's last backup run succeeded, else 0." },
  { "virtback_last_backup_bytes",
    "Bytes the domain's last backup wrote." },
  { "virtback_last_duration_seconds",
    "Seconds the domain's last backup run took." },
};

void
vb_metrics_free (struct vb_metrics *m)
{
  for (size_t i = 0; i < m->n; i++)
    free (m->v[i].domain);
  free (m->v);
  m->v = NULL;
  m->n = 0;
}

static struct vb_metric *
find_or_add (struct vb_metrics *m, const char *domain)
{
  struct vb_metric *nv;

  for (size_t i = 0; i < m->n; i++)
    if (!strcmp (m->v[i].domain, domain))
      return &m->v[i];
  if (!(nv = realloc (m->v, (m->n + 1) * sizeof *nv))) {
    vb_set_error ("out of memory");
    return NULL;
  }
  m->v = nv;
  nv = &m->v[m->n];
  *nv = (struct vb_metric) { .domain = strdup (domain) };
  if (!nv->domain) {
    vb_set_error ("out of memory");
    return NULL;
  }
  m->n++;
  return nv;
}

/* The label value up to its closing quote, unescaped; *END after it. */
static char *
label_value (const char *s, const char **end)
{
  char *out = malloc (strlen (s) + 1), *o = out;

  if (!out)
    return NULL;
  for (; *s && *s != '"'; s++) {
    if (*s == '\\' && s[1]) {
      s++;
      *o++ = *s == 'n' ? '\n' : *s;
    }
    else
      *o++ = *s;
  }
  *o = '\0';
  if (*s != '"') {
    free (out);
    return NULL;
  }
  *end = s + 1;
  return out;
}

static void
set_value (struct vb_metric *x, int fam, double v)
{
  switch (fam) {
  case M_SUCCESS_TS: x->has_success = true; x->last_success = v; break;
  case M_RUN_SUCCESS: x->last_run_success = v != 0; break;
  case M_BYTES: x->bytes = v; break;
  default: x->duration = v; break;
  }
}

/* NAME{domain="D"} VALUE: a sample line as vb_metrics_format writes it;
 * anything else is passed over. */
static int
parse_line (struct vb_metrics *m, const char *line)
{
  for (int f = 0; f < M_COUNT; f++) {
    size_t n = strlen (families[f].name);
    const char *p = line, *end;
    char *tail;
    if (strncmp (p, families[f].name, n) || strncmp (p + n, "{domain=\"", 9))
      continue;
    CLEANUP_FREE char *dom = label_value (p + n + 9, &end);
    if (!dom || strncmp (end, "} ", 2))
      return 0;
    double v = strtod (end + 2, &tail);
    if (tail == end + 2)
      return 0;
    struct vb_metric *x = find_or_add (m, dom);
    if (!x)
      return -1;
    set_value (x, f, v);
    return 0;
  }
  return 0;
}

int
vb_metrics_parse (const char *text, struct vb_metrics *m)
{
  CLEANUP_FREE char *copy = strdup (text);
  char *save, *line;

  memset (m, 0, sizeof *m);
  if (!copy) {
    vb_set_error ("out of memory");
    return -1;
  }
  for (line = strtok_r (copy, "\n", &save); line;
       line = strtok_r (NULL, "\n", &save))
    if (line[0] != '#' && parse_line (m, line) < 0)
      return -1;
  return 0;
}

int
vb_metrics_load (const char *path, struct vb_metrics *m)
{
  size_t len;
  CLEANUP_FREE char *text = NULL;

  memset (m, 0, sizeof *m);
  if (!(text = vb_read_file (path, &len))) {
    if (vb_get_errno () == ENOENT)
      return 0;
    return -1;
  }
  return vb_metrics_parse (text, m);
}

int
vb_metrics_update (struct vb_metrics *m, const struct vb_run_result *r)
{
  struct vb_metric *x = find_or_add (m, r->domain);

  if (!x)
    return -1;
  x->last_run_success = r->status == VB_RUN_OK;
  x->duration = r->seconds;
  if (r->level) {
    x->bytes = r->bytes;       /* a backup was made (its prune may have failed) */
    x->has_success = true;
    x->last_success = r->finished;
  }
  return 0;
}

static int
cmp_domain (const void *a, const void *b)
{
  return strcmp (((const struct vb_metric *) a)->domain,
                 ((const struct vb_metric *) b)->domain);
}

static void
put_label (FILE *f, const char *s)
{
  for (; *s; s++) {
    if (*s == '\\' || *s == '"')
      fputc ('\\', f);
    if (*s == '\n')
      fputs ("\\n", f);
    else
      fputc (*s, f);
  }
}

static void
put_family (FILE *f, int fam, const struct vb_metrics *m)
{
  fprintf (f, "# HELP %s %s\n# TYPE %s gauge\n", families[fam].name,
           families[fam].help, families[fam].name);
  for (size_t i = 0; i < m->n; i++) {
    const struct vb_metric *x = &m->v[i];
    if (fam == M_SUCCESS_TS && !x->has_success)
      continue;
    fprintf (f, "%s{domain=\"", families[fam].name);
    put_label (f, x->domain);
    fputs ("\"} ", f);
    switch (fam) {
    case M_SUCCESS_TS: fprintf (f, "%.0f\n", x->last_success); break;
    case M_RUN_SUCCESS: fprintf (f, "%d\n", x->last_run_success); break;
    case M_BYTES: fprintf (f, "%" PRIu64 "\n", x->bytes); break;
    default: fprintf (f, "%.3f\n", x->duration); break;
    }
  }
}

char *
vb_metrics_format (const struct vb_metrics *m)
{
  char *text = NULL;
  size_t len;
  FILE *f = open_memstream (&text, &len);

  if (!f) {
    vb_set_error ("out of memory");
    return NULL;
  }
  if (m->n)
    qsort (m->v, m->n, sizeof *m->v, cmp_domain);
  for (int fam = 0; fam < M_COUNT; fam++)
    put_family (f, fam, m);
  if (fclose (f) != 0) {
    free (text);
    vb_set_error ("out of memory");
    return NULL;
  }
  return text;
}

int
vb_metrics_write (const char *path, const struct vb_metrics *m)
{
  CLEANUP_FREE char *text = vb_metrics_format (m);
  CLEANUP_FREE char *d = strdup (path);
  CLEANUP_FREE char *b = strdup (path);
  const char *dir, *base;

  if (!text || !d || !b) {
    if (text)
      vb_set_error ("out of memory");
    return -1;
  }
  dir = dirname (d);
  base = basename (b);
  if (vb_mkdir_p (dir, 0755) < 0 ||
      vb_write_file_atomic (dir, base, text, strlen (text), 0644) < 0) {
    vb_prefix_error ("metrics %s", path);
    return -1;
  }
  return 0;
}
