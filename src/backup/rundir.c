/* The private directory of a run: QEMU binds the NBD socket and keeps its
 * scratch images there; nobody else may reach it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
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

/* A private directory QEMU can write (socket, scratch files) and nobody
 * else can reach: whoever can connect to the socket can read the disk. */
int
vb_run_make_rundir (struct run *x)
{
  const char *base = x->o.scratchdir ? x->o.scratchdir : "/var/tmp";
  gid_t gid;

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
  return 0;
}

void
vb_run_remove_rundir (struct run *x)
{
  char p[4096];

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
  if (rmdir (x->rundir) < 0 && errno != ENOENT)
    vb_warn ("could not remove %s: %s", x->rundir, strerror (errno));
  free (x->rundir);
  x->rundir = NULL;
}

/* The private directory of the run whose job is stale, if it is one of
 * ours: its socket and scratch files, then the directory. */
void
vb_run_remove_stale_dir (const char *sock)
{
  CLEANUP_FREE char *dir = sock ? strdup (sock) : NULL;
  char *slash = dir ? strrchr (dir, '/') : NULL;
  const char *base;
  DIR *d;
  struct dirent *e;

  if (!slash)
    return;
  *slash = '\0';
  base = strrchr (dir, '/') ? strrchr (dir, '/') + 1 : dir;
  if (strncmp (base, "virtback.", 9) || strlen (base) != 15 ||
      !(d = opendir (dir)))
    return;
  while ((e = readdir (d)) != NULL)
    if (!strcmp (e->d_name, "nbd.sock") ||
        (!strncmp (e->d_name, "scratch-", 8) && strstr (e->d_name, ".qcow2")))
      unlinkat (dirfd (d), e->d_name, 0);
  closedir (d);
  if (rmdir (dir) == 0)
    vb_info ("removed %s of the stale backup", dir);
}

