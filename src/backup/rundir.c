/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The private directory of a run: QEMU binds the NBD socket and keeps its
 * scratch images there; nobody else may reach it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "backup/run.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "common/log.h"

/* Who made a private directory: a run killed with -9 cannot remove its
 * own, so the next run removes the directories whose owner is gone. */
static int
write_owner (const char *dir)
{
  CLEANUP_FREE char *path = vb_path_join (dir, "owner");
  char pid[32];
  int n = snprintf (pid, sizeof pid, "%d\n", (int) getpid ());
  int fd = path ? open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)
                : -1;
  if (fd < 0 || vb_write_all (fd, pid, n) < 0) {
    vb_set_error_errno (errno, "%s/owner", dir);
    if (fd >= 0)
      close (fd);
    return -1;
  }
  close (fd);
  return 0;
}

static bool
ours (const char *name)
{
  size_t n = strlen (name);
  return !strcmp (name, "nbd.sock") || !strcmp (name, "owner") ||
         (!strncmp (name, "scratch-", 8) && n > 6 &&
          !strcmp (name + n - 6, ".qcow2")) ||
         (n > 5 && !strcmp (name + n - 5, ".sock")) ||
         (n > 9 && !strcmp (name + n - 9, ".sock.log"));
}

/* Remove what we and QEMU put into a private directory, then the
 * directory; anything else in it keeps it. */
static bool
clear_dir (const char *dir)
{
  DIR *d = opendir (dir);
  struct dirent *e;

  if (!d)
    return false;
  while ((e = readdir (d)) != NULL)
    if (ours (e->d_name))
      unlinkat (dirfd (d), e->d_name, 0);
  closedir (d);
  return rmdir (dir) == 0;
}

static bool
owner_gone (const char *dir)
{
  CLEANUP_FREE char *path = vb_path_join (dir, "owner");
  char buf[32] = "";
  FILE *fp;
  int pid;

  if (!path || !(fp = fopen (path, "re")))
    return false;
  if (!fgets (buf, sizeof buf, fp))
    buf[0] = '\0';
  fclose (fp);
  pid = atoi (buf);
  return pid > 0 && kill (pid, 0) < 0 && errno == ESRCH;
}

void
vb_run_reap_stale (const char *base)
{
  DIR *d = opendir (base);
  struct dirent *e;

  if (!d)
    return;
  while ((e = readdir (d)) != NULL) {
    if (strncmp (e->d_name, "virtback.", 9) || strlen (e->d_name) != 15)
      continue;
    CLEANUP_FREE char *path = vb_path_join (base, e->d_name);
    if (path && owner_gone (path) && clear_dir (path))
      vb_info ("removed %s of a run that was killed", path);
  }
  closedir (d);
}

/* A private directory QEMU can write (socket, scratch files) and nobody
 * else can reach: whoever can connect to the socket can read the disk.
 * On a remote host its session starts before libvirt has connected (each
 * session there costs a login shell): only QEMU's group waits for the
 * domain's XML. */
int
vb_run_start_rundir (struct run *x)
{
  const char *base = x->o.scratchdir ? x->o.scratchdir : "/var/tmp";

  if (!x->d->remote || x->rdir.inited)
    return 0;
  return vb_rdir_start (x->d->remote, &x->rdir, base);
}

int
vb_run_group_rundir (struct run *x)
{
  gid_t gid;

  if (!x->rdir.inited)
    return 0;
  if (!x->d->running)          /* no job: no directory */
    return vb_rdir_stop (&x->rdir);
  if (vb_domain_qemu_gid (x->d, &gid) < 0)
    return -1;
  return vb_rdir_group (x->d->remote, &x->rdir, gid);
}

int
vb_run_make_rundir (struct run *x)
{
  const char *base = x->o.scratchdir ? x->o.scratchdir : "/var/tmp";
  gid_t gid;

  if (x->remote)               /* started and grouped by the set-up */
    return (x->rundir = vb_rdir_wait (x->remote, &x->rdir, base,
                                      x->o.cancel)) ? 0 : -1;
  if (vb_domain_qemu_gid (x->d, &gid) < 0)
    return -1;
  if (asprintf (&x->rundir, "%s/virtback.XXXXXX", base) < 0 ||
      !mkdtemp (x->rundir)) {
    vb_set_error_errno (errno, "cannot create a private directory in %s "
                        "(-S)", base);
    free (x->rundir);
    x->rundir = NULL;
    return -1;
  }
  if (chown (x->rundir, -1, gid) < 0 ||
      chmod (x->rundir, 0770) < 0) {
    vb_set_error_errno (errno, "%s", x->rundir);
    return -1;
  }
  if (!(x->socket = vb_path_join (x->rundir, "nbd.sock")))
    return -1;
  return write_owner (x->rundir);
}

void
vb_run_remove_rundir (struct run *x)
{
  char p[4096];

  if (x->remote) {
    if (vb_rdir_stop (&x->rdir) < 0 && x->rundir)
      vb_warn ("could not remove %s: %s", x->rundir, vb_get_error ());
    free (x->rundir);
    x->rundir = NULL;
    return;
  }
  if (!x->rundir)
    return;
  /* Only files QEMU or we made live here: the socket and scratch images. */
  for (size_t i = 0; i < x->nsel; i++) {
    snprintf (p, sizeof p, "%s/scratch-%s.qcow2", x->rundir,
              x->sel[i].disk->target);
    unlink (p);
  }
  if (x->socket)
    unlink (x->socket);
  free (x->socket);
  x->socket = NULL;
  CLEANUP_FREE char *owner = vb_path_join (x->rundir, "owner");
  if (owner)
    unlink (owner);
  if (rmdir (x->rundir) < 0 && errno != ENOENT)
    vb_warn ("could not remove %s: %s", x->rundir, strerror (errno));
  free (x->rundir);
  x->rundir = NULL;
}

/* The private directory of the run whose job is stale, if it is one of
 * ours: its socket and scratch files, then the directory; on R's host
 * when R is set. */
void
vb_run_remove_stale_dir (const struct vb_remote *r, const char *sock)
{
  CLEANUP_FREE char *dir = sock ? strdup (sock) : NULL;
  char *slash = dir ? strrchr (dir, '/') : NULL;
  const char *base;

  if (!slash)
    return;
  *slash = '\0';
  base = vb_path_base (dir);
  if (strncmp (base, "virtback.", 9) || strlen (base) != 15)
    return;
  if (r ? vb_remote_rmdtemp (r, dir) == 0 : clear_dir (dir))
    vb_info ("removed %s of the stale backup", dir);
}

