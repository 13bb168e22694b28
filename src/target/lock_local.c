/* SPDX-License-Identifier: GPL-3.0-or-later */
/* lock_local.c: the directory backend's per-domain lock, a flock on a
 * host-local file <lock dir>/<uuid>.lock (default /run/virtback).  The
 * file is removed when the run ends, while it still holds the lock. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backupset/backupset.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "common/text.h"
#include "target/target_local.h"

#define VB_LOCK_DIR "/run/virtback"

static const char *lock_dir = VB_LOCK_DIR;

struct local_lock {
  struct vb_tlock l;
  int fd;
  char *path;
};

void
vb_target_lock_dir (const char *dir)
{
  lock_dir = dir ? dir : VB_LOCK_DIR;
}

static char *
lock_path (const char *uuid)
{
  if (!vb_bset_safe_component (uuid)) {
    vb_set_error ("invalid domain UUID '%s' for a file name",
                  uuid ? uuid : "(null)");
    return NULL;
  }
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
 * and a second open in the same process conflicts as another run would.
 * The probe of vb_local_locked holds a shared lock for microseconds: only
 * a holder that stays for half a second is a run. */
static int
take (const char *path, const char *label)
{
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
                    label, path);
    else
      vb_set_error_errno (errno, "lock %s", path);
    close (fd);
    return -1;
  }
}

struct vb_tlock *
vb_local_lock (struct vb_target *t, const char *uuid, const char *label)
{
  CLEANUP_FREE char *path = NULL;
  struct local_lock *ll;
  int fd;

  if (vb_mkdir_p (lock_dir, 0700) < 0 || !(path = lock_path (uuid)) ||
      (fd = take (path, label ? label : uuid)) < 0)
    return NULL;
  if (!(ll = calloc (1, sizeof *ll))) {
    unlink (path);
    close (fd);
    vb_set_error ("out of memory");
    return NULL;
  }
  ll->l.t = t;
  ll->fd = fd;
  ll->path = STEAL (path);
  return &ll->l;
}

void
vb_local_unlock (struct vb_tlock *l)
{
  struct local_lock *ll = (struct local_lock *) l;

  /* Only while holding the lock, and only the file we hold. */
  if (still_at_path (ll->fd, ll->path))
    unlink (ll->path);
  close (ll->fd);
  free (ll->path);
  free (ll);
}

int
vb_local_locked (struct vb_target *t, const char *uuid)
{
  CLEANUP_FREE char *path = lock_path (uuid);
  CLEANUP_CLOSE int fd = -1;

  (void) t;
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
