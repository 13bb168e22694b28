/* SPDX-License-Identifier: GPL-3.0-or-later */
/* config.c: the INI file of `virtback run`, read with libinih. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/parse.h"
#include "common/text.h"
#include "run/config.h"

#define PARALLEL_MAX 64
#define KEEP_MAX 10000

/* inih tells the handler no line number (Debian builds it without
 * INI_HANDLER_LINENO), so the reader counts the lines it hands over. */
struct reader {
  FILE *fp;
  int line;
  bool too_long;
};

struct parse {
  struct vb_run_config *cfg;
  struct reader rd;
  char *error;                 /* the first problem, without file:line */
  int error_line;
  struct vb_run_job *job;      /* the section being read; NULL: [global] */
  char seen[64][32];           /* keys of the current section */
  size_t nseen;
  char section[160];
};

size_t
vb_run_strv_len (char *const *v)
{
  size_t n = 0;

  while (v && v[n])
    n++;
  return n;
}

void
vb_run_strv_free (char **v)
{
  for (size_t i = 0; v && v[i]; i++)
    free (v[i]);
  free (v);
}

int
vb_run_strv_push (char ***v, const char *s)
{
  size_t n = vb_run_strv_len (*v);
  char **nv = realloc (*v, (n + 2) * sizeof *nv);

  if (!nv || !(nv[n] = strdup (s))) {
    if (nv)
      *v = nv;
    vb_set_error ("out of memory");
    return -1;
  }
  nv[n + 1] = NULL;
  *v = nv;
  return 0;
}

int
vb_run_parse_interval (const char *s, uint64_t *secs)
{
  static const struct { char unit; uint64_t mult; } units[] = {
    { 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }, { 'w', 604800 },
  };
  size_t n = strlen (s);
  uint64_t v;

  for (size_t i = 0; n > 1 && i < sizeof units / sizeof units[0]; i++) {
    if (s[n - 1] != units[i].unit)
      continue;
    CLEANUP_FREE char *num = strndup (s, n - 1);
    if (!num || vb_parse_uint (num, UINT64_MAX / units[i].mult, &v) < 0 ||
        v == 0)
      break;
    *secs = v * units[i].mult;
    return 0;
  }
  vb_set_error ("invalid interval '%s': a number and s, m, h, d or w "
                "(90s, 30m, 12h, 7d, 2w)", s);
  return -1;
}

int
vb_run_parse_bool (const char *s, bool *out)
{
  static const char *yes[] = { "yes", "true", "on", "1" };
  static const char *no[] = { "no", "false", "off", "0" };

  for (size_t i = 0; i < 4; i++) {
    if (!strcasecmp (s, yes[i]) || !strcasecmp (s, no[i])) {
      *out = !strcasecmp (s, yes[i]);
      return 0;
    }
  }
  vb_set_error ("invalid value '%s': yes or no", s);
  return -1;
}

static const char *level_names[] = { "auto", "full", "inc", "diff", "copy" };

const char *
vb_run_level_name (enum vb_run_level l)
{
  return level_names[l];
}

int
vb_run_parse_level (const char *s, enum vb_run_level *out)
{
  for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
    if (!strcmp (s, level_names[i])) {
      *out = i;
      return 0;
    }
  vb_set_error ("invalid level '%s': auto, full, inc, diff or copy", s);
  return -1;
}

static int
parse_path (const char *s, char **out)
{
  if (s[0] != '/') {
    vb_set_error ("'%s' is not an absolute path", s);
    return -1;
  }
  free (*out);
  if (!(*out = strdup (s))) {
    vb_set_error ("out of memory");
    return -1;
  }
  return 0;
}

static int
parse_count (const char *s, uint64_t min, uint64_t max, unsigned *out)
{
  uint64_t v;

  if (vb_parse_uint (s, max, &v) < 0 || v < min) {
    vb_set_error ("invalid number '%s': %" PRIu64 " to %" PRIu64, s, min, max);
    return -1;
  }
  *out = v;
  return 0;
}

/* Names, globs and disk targets are separated by blanks or commas. */
static int
parse_list (const char *s, char ***out)
{
  CLEANUP_FREE char *copy = strdup (s);
  char *save, *tok;

  if (!copy) {
    vb_set_error ("out of memory");
    return -1;
  }
  for (tok = strtok_r (copy, " \t,", &save); tok;
       tok = strtok_r (NULL, " \t,", &save))
    if (vb_run_strv_push (out, tok) < 0)
      return -1;
  if (!*out) {
    vb_set_error ("an empty list");
    return -1;
  }
  return 0;
}

static int
parse_compress (const char *s, char **out)
{
  if (strcmp (s, "none") && strcmp (s, "lz4") && strcmp (s, "zstd")) {
    vb_set_error ("invalid compression '%s': none, lz4 or zstd", s);
    return -1;
  }
  free (*out);
  *out = strcmp (s, "none") ? strdup (s) : NULL;
  return 0;
}

static int
global_key (struct vb_run_config *c, const char *k, const char *v, bool *known)
{
  *known = true;
  if (!strcmp (k, "output"))
    return parse_path (v, &c->output);
  if (!strcmp (k, "parallel"))
    return parse_count (v, 1, PARALLEL_MAX, &c->parallel);
  if (!strcmp (k, "report"))
    return parse_path (v, &c->report);
  if (!strcmp (k, "metrics"))
    return parse_path (v, &c->metrics);
  if (!strcmp (k, "scratchdir"))
    return parse_path (v, &c->scratchdir);
  if (!strcmp (k, "uri")) {
    free (c->uri);
    return (c->uri = strdup (v)) ? 0 : -1;
  }
  *known = false;
  return -1;
}

static int
job_key (struct vb_run_job *j, const char *k, const char *v, bool *known)
{
  *known = true;
  if (!strcmp (k, "domains"))
    return parse_list (v, &j->domains);
  if (!strcmp (k, "exclude"))
    return parse_list (v, &j->exclude);
  if (!strcmp (k, "level"))
    return vb_run_parse_level (v, &j->level);
  if (!strcmp (k, "full-interval"))
    return vb_run_parse_interval (v, &j->full_interval);
  if (!strcmp (k, "keep-chains"))
    return parse_count (v, 1, KEEP_MAX, &j->keep_chains);
  if (!strcmp (k, "compress"))
    return parse_compress (v, &j->compress);
  if (!strcmp (k, "output"))
    return parse_path (v, &j->output);
  if (!strcmp (k, "scratchdir"))
    return parse_path (v, &j->scratchdir);
  if (!strcmp (k, "freeze"))
    return vb_run_parse_bool (v, &j->freeze);
  if (!strcmp (k, "timeout"))
    return vb_run_parse_interval (v, &j->timeout);
  if (!strcmp (k, "exclude-disks"))
    return parse_list (v, &j->exclude_disks);
  if (!strcmp (k, "include-disks"))
    return parse_list (v, &j->include_disks);
  if (!strcmp (k, "uri")) {
    free (j->uri);
    return (j->uri = strdup (v)) ? 0 : -1;
  }
  *known = false;
  return -1;
}

static bool
job_name_ok (const char *n)
{
  size_t len = strlen (n);

  return len > 0 && len <= 64 &&
    strspn (n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
            "0123456789_-.") == len;
}

static int
fail (struct parse *p, const char *fmt, ...)
  __attribute__((format (printf, 2, 3)));

static int
fail (struct parse *p, const char *fmt, ...)
{
  va_list ap;

  if (!p->error) {
    va_start (ap, fmt);
    if (vasprintf (&p->error, fmt, ap) < 0)
      p->error = NULL;
    va_end (ap);
    p->error_line = p->rd.line;
  }
  return 0;                    /* inih: an error on this line */
}

static int
new_job (struct parse *p, const char *section)
{
  const char *name = section + 4;
  struct vb_run_config *c = p->cfg;
  struct vb_run_job *nj;

  if (!job_name_ok (name))
    return fail (p, "[%s]: a job name is 1 to 64 letters, digits, '_', '-' "
                 "and '.'", section);
  if (vb_run_config_job (c, name))
    return fail (p, "[%s] appears twice", section);
  if (!(nj = realloc (c->jobs, (c->njobs + 1) * sizeof *nj)))
    return fail (p, "out of memory");
  c->jobs = nj;
  p->job = &c->jobs[c->njobs++];
  *p->job = (struct vb_run_job) { .level = VB_RUN_AUTO, .freeze = true,
                                  .line = p->rd.line };
  if (!(p->job->name = strdup (name)))
    return fail (p, "out of memory");
  return 1;
}

/* A new section header resets the keys seen; "[global]" may come once. */
static int
enter_section (struct parse *p, const char *section)
{
  size_t n = strnlen (section, sizeof p->section - 1);

  /* inih keeps section names far shorter (MAX_SECTION). */
  memcpy (p->section, section, n);
  p->section[n] = '\0';
  p->nseen = 0;
  p->job = NULL;
  if (!strcmp (section, "global"))
    return 1;
  if (!strncmp (section, "job:", 4))
    return new_job (p, section);
  return fail (p, "unknown section [%s]: use [global] or [job:NAME]", section);
}

/* Lists may go on over several lines; any other key is given once. */
static bool
repeated (struct parse *p, const char *name)
{
  bool list = !strcmp (name, "domains") || !strcmp (name, "exclude");

  for (size_t i = 0; i < p->nseen; i++)
    if (!strcmp (p->seen[i], name))
      return !list;
  if (p->nseen < sizeof p->seen / sizeof p->seen[0])
    snprintf (p->seen[p->nseen++], sizeof p->seen[0], "%s", name);
  return false;
}

static int
handler (void *user, const char *section, const char *name, const char *value)
{
  struct parse *p = user;
  bool known;
  int r;

  if (p->error)
    return 0;
  if (!section[0])
    return fail (p, "key '%s' outside a section: put it under [global] or "
                 "[job:NAME]", name);
  if (strcmp (section, p->section) && !enter_section (p, section))
    return 0;
  if (repeated (p, name))
    return fail (p, "[%s] key '%s' is given twice", section, name);
  r = p->job ? job_key (p->job, name, value, &known)
    : global_key (p->cfg, name, value, &known);
  if (!known)
    return fail (p, "[%s] unknown key '%s' (see virtback-run(1))", section,
                 name);
  if (r < 0)
    return fail (p, "[%s] key '%s': %s", section, name, vb_get_error ());
  return 1;
}

static char *
read_line (char *str, int num, void *stream)
{
  struct reader *rd = stream;
  char *s = fgets (str, num, rd->fp);
  size_t n;

  if (!s)
    return NULL;
  rd->line++;
  n = strlen (s);
  if (n > 0 && s[n - 1] != '\n' && !feof (rd->fp)) {
    /* inih would read the rest as lines of their own. */
    rd->too_long = true;
    return NULL;
  }
  return s;
}

/* Defaults from [global], then what a complete job needs. */
static int
finish_job (struct parse *p, struct vb_run_job *j)
{
  struct vb_run_config *c = p->cfg;

  if (!j->domains) {
    vb_set_error ("%s:%d: [job:%s] has no 'domains' key: name the domains "
                  "(names or globs)", c->path, j->line, j->name);
    return -1;
  }
  if (!j->output && !c->output) {
    vb_set_error ("%s: [global] output is missing (nor has [job:%s] its "
                  "own): set the directory the domains back up into",
                  c->path, j->name);
    return -1;
  }
  if ((!j->output && !(j->output = strdup (c->output))) ||
      (!j->uri && c->uri && !(j->uri = strdup (c->uri))) ||
      (!j->scratchdir && c->scratchdir &&
       !(j->scratchdir = strdup (c->scratchdir)))) {
    vb_set_error ("out of memory");
    return -1;
  }
  return 0;
}

static int
finish (struct parse *p, int r)
{
  struct vb_run_config *c = p->cfg;

  if (p->rd.too_long) {
    vb_set_error ("%s:%d: line longer than %d characters", c->path,
                  p->rd.line, INI_MAX_LINE - 3);
    return -1;
  }
  if (p->error) {
    vb_set_error ("%s:%d: %s", c->path, p->error_line, p->error);
    return -1;
  }
  if (r > 0) {
    vb_set_error ("%s:%d: not a [section] or a 'key = value' line",
                  c->path, r);
    return -1;
  }
  if (c->njobs == 0) {
    vb_set_error ("%s: no [job:NAME] section: add one with a 'domains' key",
                  c->path);
    return -1;
  }
  for (size_t i = 0; i < c->njobs; i++)
    if (finish_job (p, &c->jobs[i]) < 0)
      return -1;
  return 0;
}

int
vb_run_config_load (const char *path, struct vb_run_config *cfg)
{
  struct parse p = { .cfg = cfg };
  CLEANUP_FCLOSE FILE *fp = NULL;
  int r, ret;

  memset (cfg, 0, sizeof *cfg);
  cfg->parallel = 1;
  if (!(cfg->path = strdup (path))) {
    vb_set_error ("out of memory");
    return -1;
  }
  if (!(fp = fopen (path, "re"))) {
    vb_set_error_errno (errno, "cannot read the configuration %s", path);
    return -1;
  }
  p.rd.fp = fp;
  /* A key before any header belongs to the section "". */
  p.section[0] = '\0';
  r = ini_parse_stream (read_line, &p.rd, handler, &p);
  if (r == -2) {
    vb_set_error ("out of memory");
    return -1;
  }
  ret = finish (&p, r);
  free (p.error);
  return ret;
}

static void
job_free (struct vb_run_job *j)
{
  free (j->name);
  vb_run_strv_free (j->domains);
  vb_run_strv_free (j->exclude);
  vb_run_strv_free (j->exclude_disks);
  vb_run_strv_free (j->include_disks);
  free (j->compress);
  free (j->output);
  free (j->uri);
  free (j->scratchdir);
}

void
vb_run_config_free (struct vb_run_config *cfg)
{
  for (size_t i = 0; i < cfg->njobs; i++)
    job_free (&cfg->jobs[i]);
  free (cfg->jobs);
  free (cfg->path);
  free (cfg->output);
  free (cfg->report);
  free (cfg->metrics);
  free (cfg->uri);
  free (cfg->scratchdir);
  memset (cfg, 0, sizeof *cfg);
}

const struct vb_run_job *
vb_run_config_job (const struct vb_run_config *cfg, const char *name)
{
  for (size_t i = 0; i < cfg->njobs; i++)
    if (!strcmp (cfg->jobs[i].name, name))
      return &cfg->jobs[i];
  return NULL;
}
