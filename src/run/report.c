/* SPDX-License-Identifier: GPL-3.0-or-later */
/* report.c: the run's JSON report (json-c) and the child's summary. */
#include <libgen.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "common/text.h"
#include "run/config.h"
#include "run/report.h"

void
vb_run_result_clear (struct vb_run_result *r)
{
  free (r->domain);
  free (r->job);
  free (r->level);
  free (r->chain);
  free (r->checkpoint);
  free (r->error);
  vb_run_strv_free (r->pruned);
  memset (r, 0, sizeof *r);
}

const char *
vb_run_status_name (enum vb_run_status s)
{
  static const char *names[] = { "ok", "failed", "missing" };
  return names[s];
}

static const char *
get_string (struct json_object *j, const char *key)
{
  struct json_object *v;

  if (!json_object_object_get_ex (j, key, &v) ||
      !json_object_is_type (v, json_type_string))
    return NULL;
  return json_object_get_string (v);
}

int
vb_run_take_summary (const char *text, struct vb_run_result *r)
{
  struct json_object *j = json_tokener_parse (text);
  struct json_object *disks, *w;
  const char *level = j ? get_string (j, "level") : NULL;
  const char *cp = j ? get_string (j, "checkpoint") : NULL;
  int ret = -1;

  if (!level || !json_object_object_get_ex (j, "disks", &disks) ||
      !json_object_is_type (disks, json_type_array)) {
    vb_set_error ("the backup printed no JSON summary");
    goto out;
  }
  r->bytes = 0;
  for (size_t i = 0; i < json_object_array_length (disks); i++)
    if (json_object_object_get_ex (json_object_array_get_idx (disks, i),
                                   "bytesWritten", &w))
      r->bytes += json_object_get_int64 (w);
  free (r->level);
  free (r->checkpoint);
  r->level = strdup (level);
  r->checkpoint = cp ? strdup (cp) : NULL;
  ret = r->level && (!cp || r->checkpoint) ? 0 : -1;
  if (ret < 0)
    vb_set_error ("out of memory");
out:
  json_object_put (j);
  return ret;
}

static struct json_object *
str_or_null (const char *s)
{
  return s ? json_object_new_string (s) : NULL;
}

static struct json_object *
iso_time (time_t t)
{
  char buf[32];
  struct tm tm;

  gmtime_r (&t, &tm);
  strftime (buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return json_object_new_string (buf);
}

static struct json_object *
one_result (const struct vb_run_result *r)
{
  struct json_object *o = json_object_new_object ();
  struct json_object *pruned = json_object_new_array ();

  for (size_t i = 0; r->pruned && r->pruned[i]; i++)
    json_object_array_add (pruned, json_object_new_string (r->pruned[i]));
  json_object_object_add (o, "domain", json_object_new_string (r->domain));
  json_object_object_add (o, "job", str_or_null (r->job));
  json_object_object_add (o, "status",
                          json_object_new_string (vb_run_status_name (r->status)));
  json_object_object_add (o, "level", str_or_null (r->level));
  json_object_object_add (o, "bytes", json_object_new_int64 (r->bytes));
  json_object_object_add (o, "seconds", json_object_new_double (r->seconds));
  json_object_object_add (o, "startedAfter",
                          json_object_new_double (r->started_after));
  json_object_object_add (o, "chain", str_or_null (r->chain));
  json_object_object_add (o, "checkpoint", str_or_null (r->checkpoint));
  json_object_object_add (o, "pruned", pruned);
  json_object_object_add (o, "error", str_or_null (r->error));
  return o;
}

struct json_object *
vb_run_report (const char *config, time_t started, time_t finished,
               const struct vb_run_result *res, size_t n)
{
  struct json_object *j = json_object_new_object ();
  struct json_object *doms = json_object_new_array ();
  struct json_object *failed = json_object_new_array ();

  for (size_t i = 0; i < n; i++) {
    json_object_array_add (doms, one_result (&res[i]));
    if (res[i].status != VB_RUN_OK)
      json_object_array_add (failed, json_object_new_string (res[i].domain));
  }
  json_object_object_add (j, "config", str_or_null (config));
  json_object_object_add (j, "started", iso_time (started));
  json_object_object_add (j, "finished", iso_time (finished));
  json_object_object_add (j, "success", json_object_new_boolean (
                            json_object_array_length (failed) == 0));
  json_object_object_add (j, "failed", failed);
  json_object_object_add (j, "domains", doms);
  return j;
}

int
vb_run_report_write (const char *path, struct json_object *report)
{
  const char *text = json_object_to_json_string_ext (report,
                                                     JSON_C_TO_STRING_PRETTY);
  CLEANUP_FREE char *d = strdup (path);
  CLEANUP_FREE char *b = strdup (path);
  CLEANUP_FREE char *body = text ? vb_xasprintf ("%s\n", text) : NULL;
  const char *dir, *base;

  if (!body || !d || !b) {
    vb_set_error ("out of memory");
    return -1;
  }
  dir = dirname (d);
  base = basename (b);
  if (vb_mkdir_p (dir, 0700) < 0 ||
      vb_write_file_atomic (dir, base, body, strlen (body), 0600) < 0) {
    vb_prefix_error ("report %s", path);
    return -1;
  }
  return 0;
}
