/* SPDX-License-Identifier: GPL-3.0-or-later */
/* record.c: the job records under VB_JOB_RUN_DIR and the job chains under
 * VB_JOB_CHAIN_DIR (other directories for the unit tests), JSON files of
 * mode 0600 written atomically. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "backupset/backupset.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "common/text.h"
#include "job/internal.h"

static const char *run_dir = VB_JOB_RUN_DIR;
static const char *chain_dir = VB_JOB_CHAIN_DIR;

void
vb_job_set_dirs (const char *run, const char *chain)
{
  run_dir = run ? run : VB_JOB_RUN_DIR;
  chain_dir = chain ? chain : VB_JOB_CHAIN_DIR;
}

const char *
vb_job_run_dir (void)
{
  return run_dir;
}

const char *
vb_jstr (struct json_object *o, const char *key)
{
  struct json_object *v;

  if (!o || !json_object_object_get_ex (o, key, &v) ||
      !json_object_is_type (v, json_type_string))
    return NULL;
  return json_object_get_string (v);
}

long long
vb_jint (struct json_object *o, const char *key)
{
  struct json_object *v;

  if (!o || !json_object_object_get_ex (o, key, &v))
    return 0;
  return (long long) json_object_get_int64 (v);
}

bool
vb_job_valid_id (const char *id)
{
  size_t n = id ? strlen (id) : 0;

  if (n == 0 || n > 64)
    return false;
  return strspn (id, "0123456789abcdef") == n;
}

char *
vb_job_random_hex (size_t nbytes)
{
  unsigned char buf[32];
  char *hex;

  if (nbytes > sizeof buf || sodium_init () < 0) {
    vb_set_error ("libsodium: cannot initialise its random generator");
    return NULL;
  }
  randombytes_buf (buf, nbytes);
  if (!(hex = malloc (nbytes * 2 + 1))) {
    vb_set_error ("out of memory");
    return NULL;
  }
  return sodium_bin2hex (hex, nbytes * 2 + 1, buf, nbytes);
}

static int
save_json (const char *dir, const char *name, struct json_object *o)
{
  const char *s = json_object_to_json_string_ext (
    o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);

  if (vb_mkdir_p (dir, 0700) < 0)
    return -1;
  return vb_write_file_atomic (dir, name, s, strlen (s), 0600);
}

static struct json_object *
load_json (const char *path)
{
  CLEANUP_FREE char *text = vb_read_file (path, NULL);
  struct json_object *o;

  if (!text)
    return NULL;
  if (!(o = json_tokener_parse (text)) ||
      !json_object_is_type (o, json_type_object)) {
    json_object_put (o);
    vb_set_error ("%s: not a JSON object: remove the file", path);
    return NULL;
  }
  return o;
}

int
vb_jrec_save (struct json_object *rec)
{
  CLEANUP_FREE char *name = vb_xasprintf ("%s.json", vb_jstr (rec, "id"));

  return name ? save_json (run_dir, name, rec) : -1;
}

struct json_object *
vb_jrec_load (const char *id)
{
  CLEANUP_FREE char *path = NULL;

  if (!vb_job_valid_id (id) ||
      !(path = vb_xasprintf ("%s/%s.json", run_dir, id)) ||
      access (path, F_OK) < 0) {
    vb_set_error ("there is no job %s: 'virtback job list' shows the "
                  "running jobs", id);
    return NULL;
  }
  return load_json (path);
}

int
vb_jrec_remove (const char *id)
{
  CLEANUP_FREE char *path = vb_xasprintf ("%s/%s.json", run_dir, id);

  if (!path)
    return -1;
  if (unlink (path) < 0 && errno != ENOENT) {
    vb_set_error_errno (errno, "remove %s", path);
    return -1;
  }
  return vb_fsync_dir (run_dir);
}

static int
push (char ***v, size_t *n, const char *s)
{
  char **nv = realloc (*v, (*n + 2) * sizeof *nv);

  if (!nv || !(nv[*n] = strdup (s))) {
    if (nv)
      *v = nv;
    vb_set_error ("out of memory");
    return -1;
  }
  nv[++*n] = NULL;
  *v = nv;
  return 0;
}

char **
vb_jrec_ids (void)
{
  DIR *dir = opendir (run_dir);
  char **v = calloc (1, sizeof *v);
  struct dirent *e;
  size_t n = 0;

  if (!v || (!dir && errno != ENOENT)) {
    vb_set_error_errno (errno ? errno : ENOMEM, "%s", run_dir);
    if (dir)
      closedir (dir);
    free (v);
    return NULL;
  }
  while (dir && (e = readdir (dir)) != NULL) {
    char id[80];
    size_t l = strlen (e->d_name);
    if (l < 6 || l >= sizeof id || strcmp (e->d_name + l - 5, ".json"))
      continue;
    memcpy (id, e->d_name, l - 5);
    id[l - 5] = '\0';
    if (vb_job_valid_id (id) && push (&v, &n, id) < 0)
      break;
  }
  if (dir)
    closedir (dir);
  return v;
}

static char *
chain_name (const char *uuid, const char *prefix)
{
  if (!vb_bset_safe_component (uuid) || !vb_bset_safe_component (prefix)) {
    vb_set_error ("invalid domain UUID or prefix for a file name");
    return NULL;
  }
  return vb_xasprintf ("%s.%s.json", uuid, prefix);
}

struct json_object *
vb_jchain_load (const char *uuid, const char *prefix)
{
  CLEANUP_FREE char *name = chain_name (uuid, prefix);
  CLEANUP_FREE char *path = name ? vb_path_join (chain_dir, name)
                                 : NULL;
  struct json_object *o, *pts, *r;

  if (!path)
    return NULL;
  if (access (path, F_OK) < 0)
    return json_object_new_array ();
  if (!(o = load_json (path)))
    return NULL;
  if (!json_object_object_get_ex (o, "checkpoints", &pts) ||
      !json_object_is_type (pts, json_type_array)) {
    json_object_put (o);
    vb_set_error ("%s: no \"checkpoints\" list: remove the file and start "
                  "a full job", path);
    return NULL;
  }
  r = json_object_get (pts);
  json_object_put (o);
  return r;
}

int
vb_jchain_save (const char *uuid, const char *prefix,
                struct json_object *chain)
{
  CLEANUP_FREE char *name = chain_name (uuid, prefix);
  struct json_object *o = json_object_new_object ();
  int r;

  if (!name || !o) {
    json_object_put (o);
    return -1;
  }
  json_object_object_add (o, "checkpoints", json_object_get (chain));
  r = save_json (chain_dir, name, o);
  json_object_put (o);
  return r;
}
