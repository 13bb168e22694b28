/* agent.c: guest filesystem freeze/thaw, and qemu-img info of an image. */
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

/* ---- qemu-img info ---- */

struct sbuf {
  char *data;
  size_t len, cap;
};

/* Append what one read() gives; 0 at EOF, 1 for more, -1 on error. */
static int
sbuf_read (int fd, struct sbuf *b)
{
  ssize_t r;

  if (b->cap - b->len < 4096) {
    char *p = realloc (b->data, b->cap * 2 + 4096);
    if (p == NULL)
      return -1;
    b->data = p;
    b->cap = b->cap * 2 + 4096;
  }
  do
    r = read (fd, b->data + b->len, b->cap - b->len - 1);
  while (r < 0 && errno == EINTR);
  if (r < 0)
    return -1;
  b->len += r;
  b->data[b->len] = '\0';
  return r > 0;
}

/* Drain both pipes; reading them in turn could block the child on a
 * full stderr pipe. */
static int
drain (int out, int err, struct sbuf *bout, struct sbuf *berr)
{
  struct pollfd p[2] = { { .fd = out, .events = POLLIN },
                         { .fd = err, .events = POLLIN } };
  struct sbuf *b[2] = { bout, berr };

  while (p[0].fd >= 0 || p[1].fd >= 0) {
    if (poll (p, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    for (int i = 0; i < 2; i++) {
      if (p[i].fd < 0 || p[i].revents == 0)
        continue;
      int r = sbuf_read (p[i].fd, b[i]);
      if (r < 0)
        return -1;
      if (r == 0)
        p[i].fd = -1;
    }
  }
  return 0;
}

static int
spawn (const char *path, int out[2], int err[2], pid_t *pid)
{
  char *argv[] = { "qemu-img", "info", "-U", "--output", "json",
                   (char *) path, NULL };
  posix_spawn_file_actions_t fa;
  int r;

  posix_spawn_file_actions_init (&fa);
  posix_spawn_file_actions_adddup2 (&fa, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2 (&fa, err[1], STDERR_FILENO);
  posix_spawn_file_actions_addopen (&fa, STDIN_FILENO, "/dev/null",
                                    O_RDONLY, 0);
  r = posix_spawnp (pid, "qemu-img", &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  close (out[1]);
  close (err[1]);
  if (r != 0)
    vb_set_error_errno (r, "%s: run qemu-img", path);
  return r ? -1 : 0;
}

static int
wait_child (pid_t pid, const char *path, const struct sbuf *err)
{
  int status;

  while (waitpid (pid, &status, 0) < 0)
    if (errno != EINTR) {
      vb_set_error_errno (errno, "%s: wait for qemu-img", path);
      return -1;
    }
  if (WIFEXITED (status) && WEXITSTATUS (status) == 0)
    return 0;
  vb_set_error ("%s: qemu-img info failed: %.*s", path,
                (int) strcspn (err->data ? err->data : "", "\n"),
                err->data ? err->data : "");
  return -1;
}

char *
vb_qemu_img_info (const char *path)
{
  int out[2], err[2];
  CLEANUP_CLOSE int rout = -1;
  CLEANUP_CLOSE int rerr = -1;
  CLEANUP_FREE char *errtext = NULL;
  struct sbuf bout = { 0 }, berr = { 0 };
  pid_t pid;
  int r;

  /* Relative names could start with '-' or look like "proto:..." */
  if (path == NULL || path[0] != '/') {
    vb_set_error ("%s: qemu-img info: not an absolute path",
                  path ? path : "(null)");
    return NULL;
  }
  if (pipe2 (out, O_CLOEXEC) < 0) {
    vb_set_error_errno (errno, "%s: pipe", path);
    return NULL;
  }
  if (pipe2 (err, O_CLOEXEC) < 0) {
    vb_set_error_errno (errno, "%s: pipe", path);
    close (out[0]);
    close (out[1]);
    return NULL;
  }
  rout = out[0];
  rerr = err[0];
  if (spawn (path, out, err, &pid) < 0)
    return NULL;
  r = drain (rout, rerr, &bout, &berr);
  errtext = berr.data;
  if (r < 0)
    r = errno;
  if (wait_child (pid, path, &berr) < 0 || r > 0 || bout.len == 0) {
    if (r > 0)
      vb_set_error_errno (r, "%s: read qemu-img output", path);
    else if (bout.len == 0 && berr.len == 0)
      vb_set_error ("%s: qemu-img info printed nothing", path);
    free (bout.data);
    return NULL;
  }
  return bout.data;
}
