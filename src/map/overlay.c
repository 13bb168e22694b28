/* SPDX-License-Identifier: GPL-3.0-or-later */
/* overlay.c: virtback map --writable --overlay FILE.qcow2.  See map.h.
 *
 * nbdkit's cow filter keeps its overlay in a temporary file it deletes,
 * so a kept overlay takes another route: nbdkit serves the point
 * read-only on FILE.sock, FILE is a qcow2 whose backing file is that
 * export (nbd+unix:///DISK?socket=FILE.sock), and qemu-nbd serves FILE,
 * writable, where the user asked.  The backing name stays valid: serving
 * the same point on FILE.sock again makes FILE readable whole. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "common/proc.h"
#include "map/internal.h"
#include "map/map.h"
#include "nbd/qemu_nbd.h"

#define START_TIMEOUT_MS 30000

/* The absolute path of FILE, whose directory must exist. */
static char *
absolute_path (const char *file)
{
  CLEANUP_FREE char *copy = strdup (file), *dir = NULL;
  char *slash = copy ? strrchr (copy, '/') : NULL;
  const char *base = slash ? slash + 1 : file;

  if (!copy)
    return NULL;
  if (slash)
    *slash = '\0';
  if (!(dir = realpath (slash ? (*copy ? copy : "/") : ".", NULL))) {
    vb_set_error_errno (errno, "--overlay %s: its directory", file);
    return NULL;
  }
  if (!*base || strchr (base, ',')) {
    vb_set_error ("--overlay %s: give a file name without a comma", file);
    return NULL;
  }
  return vb_path_join (dir, base);
}

int
vb_map_overlay_prepare (const struct vb_map_opts *o, struct vb_map *m)
{
  struct stat st;

  if (!o->writable || o->detached) {
    vb_set_error ("--overlay goes with --writable");
    return -1;
  }
  if (m->disks[0] && m->disks[1]) {
    vb_set_error ("--overlay keeps the writes of one disk: give -d DISK");
    return -1;
  }
  if (!(m->overlay = absolute_path (o->overlay)))
    return -1;
  if (lstat (m->overlay, &st) == 0) {
    vb_set_error ("--overlay %s exists: remove it, or give another file",
                  m->overlay);
    return -1;
  }
  if (asprintf (&m->backsock, "%s.sock", m->overlay) < 0) {
    m->backsock = NULL;
    return vb_set_error_errno (ENOMEM, "map"), -1;
  }
  if (access (m->backsock, F_OK) == 0) {
    vb_set_error ("%s exists already: is a map of this overlay running? "
                  "Remove it if not", m->backsock);
    return -1;
  }
  return 0;
}

static int
create_overlay (struct vb_map *m)
{
  CLEANUP_FREE char *opts = NULL;

  if (asprintf (&opts, "backing_file=nbd+unix:///%s?socket=%s,"
                "backing_fmt=raw", m->disks[0], m->backsock) < 0)
    return vb_set_error_errno (ENOMEM, "map"), -1;
  m->overlay_made = true;
  if (vb_qemu_img_create (m->overlay, "qcow2", opts, m->size) < 0 ||
      chmod (m->overlay, 0600) < 0) {
    vb_prefix_error ("create %s", m->overlay);
    return -1;
  }
  return 0;
}

static int
wait_qemu_nbd (struct vb_map *m, const char *pidf, const char *log)
{
  struct timespec ts = { 0, 10 * 1000000 };
  char line[512];

  for (int waited = 0; waited < START_TIMEOUT_MS; waited += 10) {
    if (access (pidf, F_OK) == 0)
      return 0;
    if (vb_proc_exited (m->qpid) != 0) {
      m->qpid = -1;
      vb_proc_log_line (log, line, sizeof line);
      vb_set_error ("qemu-nbd did not start: %s", *line ? line
                    : "it exited");
      return -1;
    }
    nanosleep (&ts, NULL);
  }
  vb_set_error ("qemu-nbd did not start within %d s", START_TIMEOUT_MS / 1000);
  return -1;
}

/* qemu-nbd serving the overlay where the user asked, TLS as nbdkit
 * would take it. */
static int
spawn_qemu_nbd (const struct vb_map_opts *o, struct vb_map *m,
                const char *addr, const char *port, const char *pidf,
                const char *log)
{
  CLEANUP_FREE char *where = NULL, *pidopt = NULL, *exp = NULL, *obj = NULL,
    *portopt = NULL;
  char *argv[16];
  int n = 0;

  if ((o->socket ? asprintf (&where, "--socket=%s", o->socket)
                 : asprintf (&where, "--bind=%s", addr)) < 0 ||
      asprintf (&pidopt, "--pid-file=%s", pidf) < 0 ||
      asprintf (&exp, "--export-name=%s", m->disks[0]) < 0 ||
      (port && asprintf (&portopt, "--port=%s", port) < 0) ||
      (o->tls && asprintf (&obj, "tls-creds-x509,id=tls0,endpoint=server,"
                           "dir=%s", o->tls_dir ? o->tls_dir
                           : "/etc/pki/qemu") < 0))
    return vb_set_error_errno (ENOMEM, "map"), -1;
  argv[n++] = "qemu-nbd";
  argv[n++] = where;
  if (portopt)
    argv[n++] = portopt;
  argv[n++] = pidopt;
  argv[n++] = exp;
  argv[n++] = "--format=qcow2";
  argv[n++] = "--persistent";
  argv[n++] = "--shared=16";
  argv[n++] = "--cache=writeback";
  if (obj) {
    argv[n++] = "--object";
    argv[n++] = obj;
    argv[n++] = "--tls-creds=tls0";
  }
  argv[n++] = m->overlay;
  argv[n] = NULL;
  m->qpid = vb_proc_spawn (argv, log);
  return m->qpid > 0 ? wait_qemu_nbd (m, pidf, log) : -1;
}

int
vb_map_overlay_serve (const struct vb_map_opts *o, struct vb_map *m,
                      const char *addr, const char *port)
{
  CLEANUP_FREE char *pidf = vb_path_join (m->rundir, "qemu-nbd.pid");
  CLEANUP_FREE char *log = vb_path_join (m->rundir, "qemu-nbd.log");

  if (!pidf || !log || create_overlay (m) < 0)
    return -1;
  if (spawn_qemu_nbd (o, m, addr, port, pidf, log) < 0)
    return -1;
  m->overlay_kept = true;
  return 0;
}

bool
vb_map_overlay_serving (struct vb_map *m)
{
  if (m->qpid <= 0)
    return true;
  if (vb_proc_exited (m->qpid) == 0)
    return true;
  m->qpid = -1;
  return false;
}

/* qemu-nbd first: it flushes the overlay as it ends, reading through
 * nbdkit until then. */
void
vb_map_overlay_stop (struct vb_map *m)
{
  static const char *const names[] = { "qemu-nbd.pid", "qemu-nbd.log", NULL };

  if (m->qpid > 0)
    vb_proc_stop (m->qpid, 10000);
  m->qpid = -1;
  if (m->overlay && m->overlay_made && !m->overlay_kept)
    unlink (m->overlay);
  if (m->backsock)
    unlink (m->backsock);
  for (const char *const *nm = names; m->rundir && *nm; nm++) {
    CLEANUP_FREE char *p = vb_path_join (m->rundir, *nm);
    if (p)
      unlink (p);
  }
  free (m->overlay);
  free (m->backsock);
  m->overlay = m->backsock = NULL;
}
