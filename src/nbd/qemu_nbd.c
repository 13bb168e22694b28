/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/proc.h"
#include "nbd/nbd.h"
#include "nbd/qemu_nbd.h"

#define VB_NBD_SHARED 10           /* a literal: it goes into a string */
_Static_assert (VB_NBD_SHARED == VB_NBD_MAXCONN + 2,
                "qemu-nbd must take every connection a backup opens");
#define VB_STR_(x) #x
#define VB_STR(x) VB_STR_ (x)

#define MAXARGS 24

/* Is someone accepting on SOCK? */
static bool
listening (const char *sock)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool ok;

  if (fd < 0)
    return false;
  snprintf (sa.sun_path, sizeof sa.sun_path, "%s", sock);
  ok = connect (fd, (struct sockaddr *) &sa, sizeof sa) == 0;
  close (fd);
  return ok;
}

/* qemu-nbd listens within about 5 ms here: the first probes come 1 ms
 * apart, doubling to 20 ms, so a fixed 20 ms step adds nothing to every
 * start (the standby starts one per disk per sync). */
static int
wait_listening (struct vb_qemu_nbd *q, const struct vb_qemu_nbd_opts *o)
{
  struct timespec ts = { 0, 1000000 };
  char line[512];

  for (long waited = 0; waited < 10000000000L; waited += ts.tv_nsec) {
    if (vb_proc_exited (q->pid) == 1) {
      q->pid = 0;
      vb_proc_log_line (q->log, line, sizeof line);
      vb_set_error ("qemu-nbd for %s exited: %s", o->image,
                    line[0] ? line : "no message");
      return -1;
    }
    if (o->cancel && __atomic_load_n (o->cancel, __ATOMIC_RELAXED)) {
      vb_set_error ("interrupted");
      return -1;
    }
    if (access (q->sock, F_OK) == 0 && listening (q->sock))
      return 0;
    nanosleep (&ts, NULL);
    ts.tv_nsec = ts.tv_nsec < 10 * 1000000 ? ts.tv_nsec * 2 : 20 * 1000000;
  }
  vb_set_error ("qemu-nbd did not listen on %s within 10 seconds", q->sock);
  return -1;
}

int
vb_qemu_nbd_start (struct vb_qemu_nbd *q, const struct vb_qemu_nbd_opts *o)
{
  CLEANUP_FREE char *sockopt = NULL, *fmtopt = NULL, *expopt = NULL,
    *bmopt = NULL;
  char *argv[MAXARGS];
  int n = 0;

  memset (q, 0, sizeof *q);
  if (asprintf (&sockopt, "--socket=%s", o->sock) < 0 ||
      asprintf (&fmtopt, "--format=%s", o->format) < 0 ||
      asprintf (&expopt, "--export-name=%s", o->export) < 0 ||
      (o->bitmap && asprintf (&bmopt, "--bitmap=%s", o->bitmap) < 0) ||
      !(q->sock = strdup (o->sock)) || asprintf (&q->log, "%s.log", o->sock) < 0) {
    vb_set_error ("out of memory");
    return -1;
  }
  argv[n++] = "qemu-nbd";
  argv[n++] = sockopt;
  argv[n++] = fmtopt;
  argv[n++] = expopt;
  argv[n++] = "--persistent";  /* we connect more than once */
  /* The reads, the extent map running ahead, and the probe that waits for
   * the socket: a client past the limit would wait for a greeting forever. */
  argv[n++] = "--shared=" VB_STR (VB_NBD_SHARED);
  if (o->readonly)
    argv[n++] = "--read-only";
  if (bmopt)
    argv[n++] = bmopt;
  for (const char *const *e = o->extra; e && *e && n < MAXARGS - 2; e++)
    argv[n++] = (char *) *e;
  argv[n++] = (char *) o->image;
  argv[n] = NULL;
  if ((q->pid = vb_proc_spawn (argv, q->log)) < 0) {
    q->pid = 0;
    return -1;
  }
  return wait_listening (q, o);
}

void
vb_qemu_nbd_stop (struct vb_qemu_nbd *q)
{
  if (q->pid > 0)
    vb_proc_stop (q->pid, 2000);
  q->pid = 0;
  if (q->sock)
    unlink (q->sock);
  if (q->log)
    unlink (q->log);
  free (q->sock);
  free (q->log);
  q->sock = q->log = NULL;
}
