/* SPDX-License-Identifier: GPL-3.0-or-later */
/* backupset.c: names, the chain file and saved checkpoints of a
 * virtnbdbackup-style backup directory.  See backupset.h. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json.h>

#include "backupset/backupset.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "common/text.h"
#include "target/target.h"

static const char *const level_names[] = {
  [VB_LEVEL_COPY] = "copy", [VB_LEVEL_FULL] = "full",
  [VB_LEVEL_INC] = "inc", [VB_LEVEL_DIFF] = "diff",
  [VB_LEVEL_AUTO] = "auto",
};

const char *
vb_level_name (enum vb_level l)
{
  if ((unsigned) l >= sizeof level_names / sizeof level_names[0])
    return "unknown";
  return level_names[l];
}

int
vb_level_parse (const char *s, enum vb_level *l)
{
  for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
    if (strcmp (s, level_names[i]) == 0) {
      *l = (enum vb_level) i;
      return 0;
    }
  }
  vb_set_error ("unknown backup level '%s' (expected copy, full, inc, diff "
                "or auto)", s);
  return -1;
}

bool
vb_bset_safe_component (const char *name)
{
  return name && *name && !strchr (name, '/') &&
    strcmp (name, ".") != 0 && strcmp (name, "..") != 0;
}

/* Every piece of a file name must be one safe path component. */
static bool
check_part (const char *what, const char *s)
{
  if (vb_bset_safe_component (s))
    return true;
  vb_set_error ("invalid %s '%s' for a file name", what, s ? s : "(null)");
  return false;
}

char *
vb_bset_data_name (const char *disk, enum vb_level l, const char *ident)
{
  if (!check_part ("disk name", disk))
    return NULL;
  switch (l) {
  case VB_LEVEL_COPY:
  case VB_LEVEL_FULL:
    return vb_xasprintf ("%s.%s.data", disk, vb_level_name (l));
  case VB_LEVEL_INC:
  case VB_LEVEL_DIFF:
    if (!check_part ("backup identifier", ident))
      return NULL;
    return vb_xasprintf ("%s.%s.%s.data", disk, vb_level_name (l), ident);
  default:
    vb_set_error ("%s: no data file name for backup level '%s'", disk,
                  vb_level_name (l));
    return NULL;
  }
}

/* As the peer: the checkpoint's name, "copy" for copy backups, and the
 * current epoch when there is no checkpoint (diff, offline). */
char *
vb_bset_ident (enum vb_level l, const char *checkpoint)
{
  if (l == VB_LEVEL_COPY)
    return vb_xasprintf ("copy");
  if (l == VB_LEVEL_DIFF || !checkpoint || !*checkpoint)
    return vb_xasprintf ("%lld", (long long) time (NULL));
  if (!check_part ("checkpoint name", checkpoint))
    return NULL;
  return vb_xasprintf ("%s", checkpoint);
}

char *
vb_bset_vmconfig_name (const char *ident)
{
  if (!check_part ("backup identifier", ident))
    return NULL;
  return vb_xasprintf ("vmconfig.%s.xml", ident);
}

char *
vb_bset_qcow_json_name (const char *disk, const char *ident)
{
  if (!check_part ("disk name", disk) ||
      !check_part ("backup identifier", ident))
    return NULL;
  return vb_xasprintf ("%s.%s.qcow.json", disk, ident);
}

char *
vb_bset_cpt_name (const char *domain)
{
  if (!check_part ("domain name", domain))
    return NULL;
  return vb_xasprintf ("%s.cpt", domain);
}

char *
vb_bset_log_name (enum vb_level l, time_t when)
{
  struct tm tm;
  char stamp[32];

  if (!localtime_r (&when, &tm) ||
      strftime (stamp, sizeof stamp, "%m%d%Y%H%M%S", &tm) == 0) {
    vb_set_error ("cannot format log time stamp");
    return NULL;
  }
  return vb_xasprintf ("backup.%s.%s.log", vb_level_name (l), stamp);
}

char *
vb_bset_chksum_name (const char *data_file)
{
  return vb_xasprintf ("%s.chksum", data_file);
}

/* ---- the chain file ---- */

bool
vb_bset_is_checkpoint_of (const char *name, const char *prefix)
{
  size_t pl = strlen (prefix);

  if (strncmp (name, prefix, pl) || name[pl] != '.' || !name[pl + 1])
    return false;
  for (const char *s = name + pl + 1; *s; s++)
    if (!isdigit ((unsigned char) *s))
      return false;
  return true;
}

bool
vb_strv_has (char *const *v, const char *s)
{
  for (; v && *v; v++)
    if (!strcmp (*v, s))
      return true;
  return false;
}

char *
vb_bset_checkpoint_name (const char *prefix, size_t n, char *const *taken,
                         char *const *also)
{
  for (;; n++) {
    char *name = vb_xasprintf ("%s.%zu", prefix, n);
    if (!name || (!vb_strv_has (taken, name) && !vb_strv_has (also, name)))
      return name;
    free (name);
  }
}

size_t
vb_strv_len (char *const *v)
{
  size_t n = 0;

  while (v && v[n])
    n++;
  return n;
}

void
vb_strv_free (char **v)
{
  vb_cleanup_strv (&v);
}

char *
vb_cpt_format (char *const *names)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream (&buf, &len);

  if (!out) {
    vb_set_error_errno (errno, "open_memstream");
    return NULL;
  }
  fputc ('[', out);
  for (size_t i = 0; names && names[i]; i++) {
    if (i > 0)
      fputs (", ", out);
    if (vb_put_py_json_string (out, names[i]) < 0) {
      fclose (out);
      free (buf);
      vb_set_error ("checkpoint name is not valid UTF-8");
      return NULL;
    }
  }
  fputc (']', out);
  if (fclose (out) != 0) {
    free (buf);
    vb_set_error ("out of memory");
    return NULL;
  }
  return buf;
}

/* Turn the parsed JSON list into a vector of safe names. */
static char **
cpt_from_json (const char *path, struct json_object *jv)
{
  size_t n;
  char **v;

  if (!json_object_is_type (jv, json_type_array)) {
    vb_set_error ("%s: invalid checkpoint file: not a JSON list", path);
    return NULL;
  }
  n = json_object_array_length (jv);
  v = calloc (n + 1, sizeof *v);
  if (!v) {
    vb_set_error ("out of memory");
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    struct json_object *e = json_object_array_get_idx (jv, i);
    const char *s = json_object_get_string (e);
    if (!json_object_is_type (e, json_type_string) ||
        strlen (s) != (size_t) json_object_get_string_len (e) ||
        !vb_bset_safe_component (s)) {
      vb_set_error ("%s: invalid checkpoint file: entry %zu is not a "
                    "checkpoint name", path, i);
      vb_strv_free (v);
      return NULL;
    }
    if (!(v[i] = strdup (s))) {
      vb_set_error ("out of memory");
      vb_strv_free (v);
      return NULL;
    }
  }
  return v;
}

char **
vb_cpt_read (struct vb_target *t, const char *domain)
{
  CLEANUP_FREE char *name = vb_bset_cpt_name (domain);
  CLEANUP_FREE char *path = name ? vb_path_join (t->where, name) : NULL;
  CLEANUP_FREE char *text = NULL;
  struct json_object *jv;
  enum json_tokener_error jerr;
  struct vb_target_stat st;
  size_t len;
  char **v;

  if (!path || vb_target_stat (t, name, &st) < 0)
    return NULL;
  if (!st.exists) {
    if (!(v = calloc (1, sizeof *v)))
      vb_set_error ("out of memory");
    return v;
  }
  if (!(text = vb_target_read (t, name, &len)))
    return NULL;
  if (strlen (text) != len) {
    vb_set_error ("%s: invalid checkpoint file: contains a NUL byte", path);
    return NULL;
  }
  jv = json_tokener_parse_verbose (text, &jerr);
  if (!jv) {
    vb_set_error ("%s: invalid checkpoint file: %s", path,
                  json_tokener_error_desc (jerr));
    return NULL;
  }
  v = cpt_from_json (path, jv);
  json_object_put (jv);
  return v;
}

/* ---- saved checkpoint XML ---- */

static char *
checkpoint_file (const char *name)
{
  if (!check_part ("checkpoint name", name))
    return NULL;
  return vb_xasprintf ("%s.xml", name);
}

int
vb_bset_save_checkpoint (struct vb_target *cpt, const char *name,
                         const char *xml)
{
  CLEANUP_FREE char *file = checkpoint_file (name);

  return file ? vb_target_put (cpt, file, xml, strlen (xml)) : -1;
}

char *
vb_bset_load_checkpoint (struct vb_target *cpt, const char *name)
{
  CLEANUP_FREE char *file = checkpoint_file (name);

  return file ? vb_target_read (cpt, file, NULL) : NULL;
}

/* Strict: a name that is only the suffix (".partial") is none of ours. */
static bool
has_suffix (const char *s, const char *suffix)
{
  size_t n = strlen (s), m = strlen (suffix);

  return n > m && memcmp (s + n - m, suffix, m) == 0;
}

/* Remove every file of T whose name ends in SUFFIX; returns the count,
 * or -1. */
static int
remove_matching (struct vb_target *t, const char *suffix)
{
  CLEANUP_STRV char **names = vb_target_list (t, NULL);
  int n = 0;

  if (!names)
    return vb_get_errno () == ENOENT ? 0 : -1;
  for (char **e = names; *e; e++) {
    if (!has_suffix (*e, suffix))
      continue;
    if (vb_target_remove (t, *e) < 0)
      return -1;
    n++;
  }
  return n;
}

int
vb_bset_remove_checkpoints (struct vb_target *cpt)
{
  return remove_matching (cpt, ".xml") < 0 ? -1 : 0;
}

int
vb_bset_remove_partials (struct vb_target *t)
{
  return remove_matching (t, ".partial");
}

/* ---- what the directory holds ---- */

int
vb_bset_has_backup (struct vb_target *t, const char *domain)
{
  CLEANUP_FREE char *name = vb_bset_cpt_name (domain);
  CLEANUP_STRV char **names = name ? vb_target_list (t, NULL) : NULL;

  if (!names)
    return name && vb_get_errno () == ENOENT ? 0 : -1;
  for (char **e = names; *e; e++)
    if (has_suffix (*e, ".data") || !strcmp (*e, name))
      return 1;
  return 0;
}

static bool
is_leftover (struct vb_target *t, const char *name)
{
  if (!strcmp (name, "checkpoints")) {
    CLEANUP_STRV char **in = vb_target_list (t, name);
    return in && !*in;
  }
  return !strncmp (name, "chain.", 6) ||   /* a chain -l auto set aside */
         (!strncmp (name, "backup.", 7) && vb_has_suffix (name, ".log")) ||
         vb_has_suffix (name, ".partial") || vb_has_suffix (name, ".chksum") ||
         vb_has_suffix (name, ".qcow.json") ||
         (!strncmp (name, "vmconfig.", 9) && vb_has_suffix (name, ".xml"));
}

int
vb_bset_only_leftovers (struct vb_target *t)
{
  CLEANUP_STRV char **names = vb_target_list (t, NULL);

  if (!names)
    return vb_get_errno () == ENOENT ? 1 : -1;
  for (char **e = names; *e; e++)
    if (!is_leftover (t, *e))
      return 0;
  return 1;
}
