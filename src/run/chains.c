/* SPDX-License-Identifier: GPL-3.0-or-later */
/* chains.c: the chain directories of a domain, their lock and retention. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "backupset/backupset.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "common/text.h"
#include "run/chains.h"
#include "run/config.h"
#include "target/target.h"

#define PRUNE_PREFIX ".prune-"

void
vb_chain_name (time_t t, char *buf)
{
  struct tm tm;

  gmtime_r (&t, &tm);
  strftime (buf, VB_CHAIN_NAME_LEN, "%Y%m%dT%H%M%SZ", &tm);
}

int
vb_chain_time (const char *name, time_t *t)
{
  struct tm tm = { 0 };
  const char *end;

  if (strlen (name) != VB_CHAIN_NAME_LEN - 1 ||
      strspn (name, "0123456789") != 8 || name[8] != 'T' ||
      strspn (name + 9, "0123456789") != 6 || name[15] != 'Z')
    return -1;
  end = strptime (name, "%Y%m%dT%H%M%SZ", &tm);
  if (!end || *end)
    return -1;
  *t = timegm (&tm);
  return 0;
}

static int
cmp_names (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

char **
vb_chains_list (const char *domdir)
{
  DIR *d = opendir (domdir);
  char **v = calloc (1, sizeof *v);
  struct dirent *e;
  time_t t;

  if (!v) {
    vb_set_error ("out of memory");
    if (d)
      closedir (d);
    return NULL;
  }
  if (!d) {
    if (errno == ENOENT)
      return v;
    vb_set_error_errno (errno, "cannot read %s", domdir);
    free (v);
    return NULL;
  }
  while ((e = readdir (d)))
    if (vb_chain_time (e->d_name, &t) == 0 && e->d_type == DT_DIR &&
        vb_run_strv_push (&v, e->d_name) < 0) {
      vb_run_strv_free (v);
      v = NULL;
      break;
    }
  closedir (d);
  if (v)
    qsort (v, vb_run_strv_len (v), sizeof *v, cmp_names);
  return v;
}

char **
vb_chains_to_prune (char *const *chains, unsigned keep)
{
  size_t n = vb_run_strv_len (chains);
  char **v = calloc (1, sizeof *v);

  if (!v) {
    vb_set_error ("out of memory");
    return NULL;
  }
  /* The newest is the current chain: keep >= 1 always leaves it. */
  for (size_t i = 0; keep > 0 && i + keep < n && i + 1 < n; i++)
    if (vb_run_strv_push (&v, chains[i]) < 0) {
      vb_run_strv_free (v);
      return NULL;
    }
  return v;
}

int
vb_chains_lock (const char *domdir, bool mkdir)
{
  int fd;

  if (mkdir && vb_mkdir_p (domdir, 0700) < 0)
    return -1;
  fd = open (domdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    vb_set_error_errno (errno, "cannot open %s", domdir);
    return -1;
  }
  if (flock (fd, LOCK_EX | LOCK_NB) < 0) {
    int e = errno;
    close (fd);
    if (e == EWOULDBLOCK)
      vb_set_error ("another virtback run or prune is working in %s: let it "
                    "finish first", domdir);
    else
      vb_set_error_errno (e, "cannot lock %s", domdir);
    return -1;
  }
  return fd;
}

void
vb_chains_unlock (int fd)
{
  if (fd >= 0)
    close (fd);                /* the flock goes with the descriptor */
}

int
vb_chains_backup_running (const char *domdir, char *const *chains)
{
  /* Newest first: the current chain's vmconfig names today's domain. */
  for (size_t i = vb_run_strv_len (chains); i-- > 0;) {
    CLEANUP_FREE char *dir = vb_path_join (domdir, chains[i]);
    struct vb_target *t = dir ? vb_target_dir_open (dir, NULL) : NULL;
    CLEANUP_FREE char *uuid = t ? vb_bset_vmconfig_uuid (t) : NULL;
    int r = uuid ? vb_target_locked (t, uuid) : 0;

    if (t)
      vb_target_close (t);
    if (!dir || !t)
      return -1;
    if (uuid)
      return r;
  }
  return 0;
}

/* nftw passes no user pointer: whether the callback set the error. */
static __thread bool entry_failed;

static int
remove_entry (const char *path, const struct stat *sb, int flag,
              struct FTW *ftw)
{
  (void) sb;
  (void) ftw;
  if ((flag == FTW_DP ? rmdir (path) : unlink (path)) < 0) {
    vb_set_error_errno (errno, "cannot remove %s", path);
    entry_failed = true;
    return -1;
  }
  return 0;
}

static int
remove_tree (const char *path)
{
  entry_failed = false;
  if (nftw (path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
    if (!entry_failed)
      vb_set_error_errno (errno, "cannot remove %s", path);
    return -1;
  }
  return 0;
}

int
vb_chains_remove (const char *domdir, const char *name)
{
  CLEANUP_FREE char *from = vb_path_join (domdir, name);
  CLEANUP_FREE char *hidden = vb_xasprintf ("%s/%s%s", domdir, PRUNE_PREFIX,
                                            name);

  if (!from || !hidden)
    return -1;
  if (rename (from, hidden) < 0) {
    vb_set_error_errno (errno, "cannot rename %s", from);
    return -1;
  }
  if (vb_fsync_dir (domdir) < 0 || remove_tree (hidden) < 0)
    return -1;
  return vb_fsync_dir (domdir);
}

/* What a prune that was interrupted left: .prune-<chain name>. */
static int
finish_removals (const char *domdir)
{
  DIR *d = opendir (domdir);
  struct dirent *e;
  time_t t;
  int ret = 0;

  if (!d)
    return errno == ENOENT ? 0 : -1;
  while (ret == 0 && (e = readdir (d))) {
    size_t n = strlen (PRUNE_PREFIX);
    if (strncmp (e->d_name, PRUNE_PREFIX, n) ||
        vb_chain_time (e->d_name + n, &t) < 0)
      continue;
    CLEANUP_FREE char *p = vb_path_join (domdir, e->d_name);
    ret = p ? remove_tree (p) : -1;
  }
  closedir (d);
  return ret;
}

int
vb_chains_prune (const char *domdir, unsigned keep, bool dry_run,
                 char ***pruned)
{
  CLEANUP_STRV char **chains = vb_chains_list (domdir);
  char **victims;
  int running;

  *pruned = NULL;
  if (!chains || !(victims = vb_chains_to_prune (chains, keep)))
    return -1;
  *pruned = victims;
  if (dry_run || !victims[0])
    return dry_run ? 0 : finish_removals (domdir);
  running = vb_chains_backup_running (domdir, chains);
  if (running != 0) {
    if (running == 1)
      vb_set_error ("a backup of the domain of %s is running: prune again "
                    "when it has finished", domdir);
    vb_run_strv_free (STEAL (*pruned));
    return -1;
  }
  if (finish_removals (domdir) < 0)
    return -1;
  for (size_t i = 0; victims[i]; i++)
    if (vb_chains_remove (domdir, victims[i]) < 0) {
      /* Report only what went. */
      for (size_t j = i; victims[j]; j++)
        victims[j] = (free (victims[j]), NULL);
      return -1;
    }
  return 0;
}
