/* SPDX-License-Identifier: GPL-3.0-or-later */
/* backupset.c: names, the chain file, saved checkpoints and the domain lock
 * of a virtnbdbackup-style backup directory.  See backupset.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json.h>

#include "backupset/backupset.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "common/text.h"

#define VB_LOCK_DIR "/run/virtback"

static mode_t file_mode = 0600;
static mode_t dir_mode = 0700;

void
vb_bset_modes (mode_t fmode, mode_t dmode)
{
  file_mode = fmode & 07777;
  dir_mode = dmode & 07777;
}

mode_t vb_file_mode (void) { return file_mode; }
mode_t vb_dir_mode (void) { return dir_mode; }

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
vb_cpt_read (const char *dir, const char *domain)
{
  CLEANUP_FREE char *name = vb_bset_cpt_name (domain);
  CLEANUP_FREE char *path = name ? vb_path_join (dir, name) : NULL;
  CLEANUP_FREE char *text = NULL;
  struct json_object *jv;
  enum json_tokener_error jerr;
  size_t len;
  char **v;

  if (!path)
    return NULL;
  if (access (path, F_OK) < 0 && errno == ENOENT) {
    if (!(v = calloc (1, sizeof *v)))
      vb_set_error ("out of memory");
    return v;
  }
  if (!(text = vb_read_file (path, &len)))
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
vb_bset_save_checkpoint (const char *cptdir, const char *name, const char *xml)
{
  CLEANUP_FREE char *file = checkpoint_file (name);

  if (!file || vb_mkdir_p (cptdir, dir_mode) < 0)
    return -1;
  return vb_write_file_atomic (cptdir, file, xml, strlen (xml), file_mode);
}

char *
vb_bset_load_checkpoint (const char *cptdir, const char *name)
{
  CLEANUP_FREE char *file = checkpoint_file (name);
  CLEANUP_FREE char *path = file ? vb_path_join (cptdir, file) : NULL;

  if (!path)
    return NULL;
  return vb_read_file (path, NULL);
}

/* Strict: a name that is only the suffix (".partial") is none of ours. */
static bool
has_suffix (const char *s, const char *suffix)
{
  size_t n = strlen (s), m = strlen (suffix);

  return n > m && memcmp (s + n - m, suffix, m) == 0;
}

/* Unlink every entry of DIR whose name ends in SUFFIX; returns the count,
 * or -1.  A missing directory holds nothing. */
static int
remove_matching (const char *dir, const char *suffix)
{
  DIR *d = opendir (dir);
  struct dirent *e;
  int n = 0;

  if (!d) {
    if (errno == ENOENT)
      return 0;
    vb_set_error_errno (errno, "open directory %s", dir);
    return -1;
  }
  while ((e = readdir (d)) != NULL) {
    if (!has_suffix (e->d_name, suffix))
      continue;
    if (unlinkat (dirfd (d), e->d_name, 0) < 0 && errno != ENOENT) {
      vb_set_error_errno (errno, "remove %s/%s", dir, e->d_name);
      closedir (d);
      return -1;
    }
    n++;
  }
  closedir (d);
  if (n > 0 && vb_fsync_dir (dir) < 0)
    return -1;
  return n;
}

int
vb_bset_remove_checkpoints (const char *cptdir)
{
  return remove_matching (cptdir, ".xml") < 0 ? -1 : 0;
}

int
vb_bset_remove_partials (const char *dir)
{
  return remove_matching (dir, ".partial");
}

/* ---- what the directory holds ---- */

static int
has_data_file (const char *dir)
{
  DIR *d = opendir (dir);
  struct dirent *e;
  int found = 0;

  if (!d) {
    if (errno == ENOENT)
      return 0;
    vb_set_error_errno (errno, "open directory %s", dir);
    return -1;
  }
  while (!found && (e = readdir (d)) != NULL)
    found = has_suffix (e->d_name, ".data");
  closedir (d);
  return found;
}

int
vb_bset_has_backup (const char *dir, const char *domain)
{
  CLEANUP_FREE char *name = vb_bset_cpt_name (domain);
  CLEANUP_FREE char *path = name ? vb_path_join (dir, name) : NULL;
  int r;

  if (!path)
    return -1;
  if ((r = has_data_file (dir)) != 0)
    return r;
  if (access (path, F_OK) == 0)
    return 1;
  if (errno != ENOENT && errno != ENOTDIR) {
    vb_set_error_errno (errno, "%s", path);
    return -1;
  }
  return 0;
}

static bool
is_leftover (const char *dir, const char *name)
{
  if (!strcmp (name, "checkpoints")) {
    CLEANUP_FREE char *p = vb_path_join (dir, name);
    return p && vb_dir_is_empty (p) == 1;
  }
  return !strncmp (name, "chain.", 6) ||   /* a chain -l auto set aside */
         (!strncmp (name, "backup.", 7) && vb_has_suffix (name, ".log")) ||
         vb_has_suffix (name, ".partial") || vb_has_suffix (name, ".chksum") ||
         vb_has_suffix (name, ".qcow.json") ||
         (!strncmp (name, "vmconfig.", 9) && vb_has_suffix (name, ".xml"));
}

int
vb_bset_only_leftovers (const char *dir)
{
  DIR *d = opendir (dir);
  struct dirent *e;
  int ok = 1;

  if (!d) {
    if (errno == ENOENT)
      return 1;
    vb_set_error_errno (errno, "open directory %s", dir);
    return -1;
  }
  while (ok && (e = readdir (d)) != NULL)
    if (strcmp (e->d_name, ".") && strcmp (e->d_name, "..") &&
        !is_leftover (dir, e->d_name))
      ok = 0;
  closedir (d);
  return ok;
}

/* ---- the per-domain lock ---- */

static const char *lock_dir = VB_LOCK_DIR;

void
vb_bset_lock_dir (const char *dir)
{
  lock_dir = dir ? dir : VB_LOCK_DIR;
}

static char *
lock_path (const char *uuid)
{
  if (!check_part ("domain UUID", uuid))
    return NULL;
  return vb_xasprintf ("%s/%s.lock", lock_dir, uuid);
}

/* Is FD still the file at PATH?  A run that ends unlinks its lock file
 * while holding the lock; whoever opened the old file before that and got
 * the lock after it holds a lock nobody else will ever see. */
static bool
still_at_path (int fd, const char *path)
{
  struct stat a, b;

  return fstat (fd, &a) == 0 && stat (path, &b) == 0 &&
         a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* flock, not fcntl locks: they belong to the open file description, so
 * the kernel drops them when the process dies (no stale lock after kill -9)
 * and a second open in the same process conflicts as another run would. */
int
vb_bset_lock_domain (const char *uuid, const char *name)
{
  CLEANUP_FREE char *path = NULL;

  if (vb_mkdir_p (lock_dir, 0700) < 0 || !(path = lock_path (uuid)))
    return -1;
  /* verify's probe (vb_bset_domain_locked) holds a shared lock for
   * microseconds: only a holder that stays for half a second is a run. */
  for (int busy = 0;;) {
    int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    struct timespec ts = { 0, 50000000 };

    if (fd < 0) {
      vb_set_error_errno (errno, "open lock file %s", path);
      return -1;
    }
    if (flock (fd, LOCK_EX | LOCK_NB) == 0) {
      if (still_at_path (fd, path))
        return fd;
      close (fd);               /* unlinked by the run that held it: again */
      continue;
    }
    if (errno == EWOULDBLOCK && ++busy < 10) {
      close (fd);
      nanosleep (&ts, NULL);
      continue;
    }
    if (errno == EWOULDBLOCK)
      vb_set_error ("another virtback run is using domain '%s' (lock %s)",
                    name ? name : uuid, path);
    else
      vb_set_error_errno (errno, "lock %s", path);
    close (fd);
    return -1;
  }
}

void
vb_bset_unlock_domain (int fd, const char *uuid)
{
  CLEANUP_FREE char *path = NULL;

  if (fd < 0)
    return;
  /* Only while holding the lock, and only the file we hold. */
  if (uuid && (path = lock_path (uuid)) && still_at_path (fd, path))
    unlink (path);
  close (fd);
}

int
vb_bset_domain_locked (const char *uuid)
{
  CLEANUP_FREE char *path = lock_path (uuid);
  CLEANUP_CLOSE int fd = -1;

  if (!path)
    return -1;
  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT)
      return 0;
    vb_set_error_errno (errno, "open lock file %s", path);
    return -1;
  }
  /* A shared lock conflicts only with a run's exclusive one. */
  if (flock (fd, LOCK_SH | LOCK_NB) == 0)
    return 0;
  if (errno == EWOULDBLOCK)
    return 1;
  vb_set_error_errno (errno, "lock %s", path);
  return -1;
}
