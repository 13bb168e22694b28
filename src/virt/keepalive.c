/* SPDX-License-Identifier: GPL-3.0-or-later */
/* keepalive.c: connections to libvirt, and for a remote one a keepalive,
 * so that a cut link fails the next call within the timeout instead of
 * leaving it waiting on TCP.  libvirt sends its keepalive messages from
 * an event loop, which it needs registered before the connection opens:
 * one thread of ours runs it for the life of the process. */
#include <pthread.h>
#include <stdbool.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/error.h"
#include "remote/remote.h"
#include "virt/virt.h"

static int timeout_s = VB_REMOTE_TIMEOUT;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool loop_ok;

void
vb_virt_set_timeout (int seconds)
{
  timeout_s = seconds > 0 ? seconds : VB_REMOTE_TIMEOUT;
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

void *
vb_virt_connect (const char *uri)
{
  struct vb_remote r;
  int remote = vb_remote_parse (uri, &r);
  virConnectPtr conn;
  int every = timeout_s >= 15 ? 5 : (timeout_s + 2) / 3;

  vb_remote_clear (&r);
  if (remote < 0)
    return NULL;
  if (remote)
    pthread_once (&once, start_loop);
  if (!(conn = virConnectOpen (uri))) {
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
