/* SPDX-License-Identifier: GPL-3.0-or-later */
/* keepalive.c: connections to libvirt, and for a remote one a keepalive,
 * so that a cut link fails the next call within the timeout instead of
 * leaving it waiting on TCP; the remote connection's opening is bounded by
 * the same timeout, and by the caller's signal flag.  libvirt sends its keepalive messages from
 * an event loop, which it needs registered before the connection opens:
 * one thread of ours runs it for the life of the process. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/proc.h"
#include "remote/remote.h"
#include "virt/virt.h"

static int timeout_s = VB_REMOTE_TIMEOUT;
static volatile sig_atomic_t *cancel_flag;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool loop_ok;

void
vb_virt_set_timeout (int seconds)
{
  timeout_s = seconds > 0 ? seconds : VB_REMOTE_TIMEOUT;
}

void
vb_virt_set_cancel (volatile sig_atomic_t *cancel)
{
  cancel_flag = cancel;
}

int
vb_virt_get_timeout (void)
{
  return timeout_s;
}

static void *
event_loop (void *arg)
{
  (void) arg;
  for (;;)
    if (virEventRunDefaultImpl () < 0)
      break;
  return NULL;
}

static void
start_loop (void)
{
  pthread_t th;

  if (virEventRegisterDefaultImpl () < 0 ||
      pthread_create (&th, NULL, event_loop, NULL) != 0)
    return;
  pthread_detach (th);
  loop_ok = true;
}

/* ---- opening a remote connection, bounded ----
 * virConnectOpen over ssh waits as long as ssh does: to a host that does
 * not answer, the kernel's SYN retries (minutes), deaf to our signals.  It
 * runs on a thread of its own, and after the timeout the caller gets the
 * error while the thread is left to end: libvirt's ssh child is stopped,
 * so its open fails soon, and the thread frees what it holds. */
struct opening {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  char *uri;
  virConnectPtr conn;
  struct vb_error err;
  bool done, abandoned;
};

static void
opening_free (struct opening *o)
{
  pthread_mutex_destroy (&o->mu);
  pthread_cond_destroy (&o->cv);
  free (o->uri);
  free (o);
}

static void *
open_thread (void *arg)
{
  struct opening *o = arg;
  virConnectPtr c = virConnectOpen (o->uri);
  bool abandoned;

  if (!c)
    vb_virt_set_error ("cannot connect to %s", o->uri);
  pthread_mutex_lock (&o->mu);
  o->conn = c;
  vb_error_save (&o->err);
  o->done = true;
  abandoned = o->abandoned;
  pthread_cond_signal (&o->cv);
  pthread_mutex_unlock (&o->mu);
  if (abandoned) {
    if (c)
      virConnectClose (c);
    opening_free (o);
  }
  return NULL;
}

static bool
cancelled (void)
{
  return cancel_flag && __atomic_load_n (cancel_flag, __ATOMIC_RELAXED);
}

/* With O's lock held: has the open ended within the timeout?  In steps
 * of 100 ms, since a signal's flag is polled, not waited on. */
static bool
wait_opened (struct opening *o)
{
  struct timespec ts;

  for (int ms = 0; !o->done && ms < timeout_s * 1000 && !cancelled ();
       ms += 100) {
    vb_cond_deadline (&ts, 100);
    pthread_cond_timedwait (&o->cv, &o->mu, &ts);
  }
  return o->done;
}

static virConnectPtr
open_bounded (const char *uri, const char *host)
{
  struct opening *o = calloc (1, sizeof *o);
  pthread_t th;
  virConnectPtr c;

  if (!o || !(o->uri = strdup (uri))) {
    free (o);
    vb_set_error ("out of memory");
    return NULL;
  }
  pthread_mutex_init (&o->mu, NULL);
  pthread_cond_init (&o->cv, NULL);
  if (pthread_create (&th, NULL, open_thread, o) != 0) {
    opening_free (o);
    vb_set_error ("cannot start a thread");
    return NULL;
  }
  pthread_detach (th);
  pthread_mutex_lock (&o->mu);
  if (!wait_opened (o)) {
    o->abandoned = true;
    pthread_mutex_unlock (&o->mu);
    vb_proc_signal_matching ("libvirt-sock", getpid (), SIGTERM);
    if (cancelled ())
      vb_set_error_code (VB_ERR_CANCELLED, 0, "interrupted by a signal");
    else
      vb_set_error_code (VB_ERR_GENERIC, ETIMEDOUT, "host %s did not answer "
                         "within %d s (libvirt's connection over ssh): check "
                         "the link and ssh to the host, or give a longer "
                         "--timeout", host, timeout_s);
    return NULL;
  }
  pthread_mutex_unlock (&o->mu);
  if (!(c = o->conn))
    vb_error_restore (&o->err);
  opening_free (o);
  return c;
}

void *
vb_virt_connect (const char *uri)
{
  struct vb_remote r;
  int remote = vb_remote_parse (uri, &r);
  virConnectPtr conn;
  bool ssh;
  int every = timeout_s >= 15 ? 5 : (timeout_s + 2) / 3;

  if (remote < 0)
    return NULL;
  if (remote)
    pthread_once (&once, start_loop);
  ssh = remote && r.ssh;
  conn = ssh ? open_bounded (uri, r.host) : virConnectOpen (uri);
  vb_remote_clear (&r);
  if (!conn) {
    if (!ssh)
      vb_virt_set_error ("cannot connect to %s", uri);
    return NULL;
  }
  if (remote && (!loop_ok ||
                 virConnectSetKeepAlive (conn, every,
                                         (timeout_s + every - 1) / every) < 0))
  {
    vb_virt_set_error ("%s: cannot set up libvirt's keepalive", uri);
    virConnectClose (conn);
    return NULL;
  }
  return conn;
}
