/* SPDX-License-Identifier: GPL-3.0-or-later */
/* agent.c: guest filesystem freeze/thaw, and any agent command. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "virt/virt.h"

/* Seconds to wait for the agent: a guest without one must not stall the
 * backup for libvirt's default of minutes. */
#define AGENT_TIMEOUT 5

static bool
agent_missing (const virError *e)
{
  return e && (e->code == VIR_ERR_AGENT_UNRESPONSIVE ||
               e->code == VIR_ERR_ARGUMENT_UNSUPPORTED ||
               e->code == VIR_ERR_OPERATION_UNSUPPORTED);
}

static int
agent_call (struct vb_domain *d, bool freeze)
{
  int r;

  if (virDomainIsActive (d->dom) != 1) {
    vb_set_error ("domain '%s': not running, guest agent not responding",
                  d->name);
    return -1;
  }
  /* Fails when no agent is configured; the call below says so better. */
  virDomainAgentSetResponseTimeout (d->dom, AGENT_TIMEOUT, 0);
  if (freeze)
    r = virDomainFSFreeze (d->dom, NULL, 0, 0);
  else
    r = virDomainFSThaw (d->dom, NULL, 0, 0);
  if (r >= 0)
    return r;
  if (agent_missing (virGetLastError ()))
    vb_set_error ("domain '%s': guest agent not responding", d->name);
  else
    vb_virt_set_error ("domain '%s': %s", d->name,
                       freeze ? "freeze filesystems" : "thaw filesystems");
  return -1;
}

int
vb_fsfreeze (struct vb_domain *d)
{
  return agent_call (d, true);
}

int
vb_fsthaw (struct vb_domain *d)
{
  return agent_call (d, false);
}

/* Any agent command (libvirt-qemu), for verify --boot.  *NOT_UP says the
 * agent is not connected or did not answer, as opposed to a command it
 * refused. */
char *
vb_agent_command (struct vb_domain *d, const char *cmd, int timeout,
                  bool *not_up)
{
  char *reply;
  const virError *e;

  *not_up = false;
  if ((reply = virDomainQemuAgentCommand (d->dom, cmd, timeout, 0)))
    return reply;
  e = virGetLastError ();
  *not_up = e && (e->code == VIR_ERR_AGENT_UNRESPONSIVE ||
                  e->code == VIR_ERR_OPERATION_TIMEOUT);
  vb_virt_set_error ("domain '%s': guest agent", d->name);
  return NULL;
}
