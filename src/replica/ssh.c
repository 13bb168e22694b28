/* SPDX-License-Identifier: GPL-3.0-or-later */
/* ssh.c: the source's way to the standby: --to parsed with libxml2's URI
 * parser, the --rsh command split as a shell would (wordexp, no command
 * substitution), and ssh run with its stdin and stdout as the wire.  ssh's
 * keep-alives end a sync whose link is cut within about 15 s. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <wordexp.h>

#include <libxml/uri.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "common/proc.h"
#include "common/text.h"
#include "replica/replica.h"
#include "replica/ssh.h"

/* Words that reach the remote shell: nothing it would interpret. */
static bool
shell_safe (const char *s)
{
  if (!*s)
    return false;
  for (; *s; s++)
    if (!strchr ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                 "0123456789/._-+", *s))
      return false;
  return true;
}

int
vb_replica_parse_to (const char *to, char **user, char **host, char **port,
                     char **dir)
{
  xmlURIPtr u = xmlParseURI (to);
  int r = -1;

  *user = *host = *port = *dir = NULL;
  if (!u || !u->scheme || strcmp (u->scheme, "ssh") || !u->server ||
      !*u->server || !u->path || u->path[0] != '/' || u->query ||
      u->fragment)
    vb_set_error ("--to %s: give ssh://[USER@]HOST[:PORT]/DIR", to);
  else if (!shell_safe (u->path) || strstr (u->path, "..") ||
           (u->user && !shell_safe (u->user)) || !shell_safe (u->server))
    vb_set_error ("--to %s: use only letters, digits and \"/._-+\" in the "
                  "directory, user and host (and no \"..\")", to);
  else {
    *host = strdup (u->server);
    *dir = strdup (u->path);
    *user = u->user ? strdup (u->user) : NULL;
    *port = u->port > 0 ? vb_xasprintf ("%d", u->port) : NULL;
    r = *host && *dir ? 0 : -1;
  }
  xmlFreeURI (u);
  return r;
}

static int
add (char ***v, size_t *n, const char *s)
{
  char **nv = realloc (*v, (*n + 2) * sizeof *nv);

  if (nv)
    *v = nv;
  if (!nv || !(nv[*n] = strdup (s))) {
    if (nv)
      nv[*n] = NULL;
    vb_set_error ("out of memory");
    return -1;
  }
  nv[++*n] = NULL;
  return 0;
}

/* RSH's words, our keep-alives and, with CIPHERS, our cipher preference
 * (ssh takes the first value of an option, so the user's own -o or -c
 * wins), the port, the user, the host, the remote command. */
char **
vb_ssh_argv (const char *rsh, const char *remote, const char *to,
             bool ciphers)
{
  CLEANUP_FREE char *user = NULL, *host = NULL, *port = NULL, *dir = NULL;
  CLEANUP_FREE char *cmd = NULL;
  wordexp_t we;
  char **v = NULL;
  size_t n = 0;
  int ok = 0;

  if (vb_replica_parse_to (to, &user, &host, &port, &dir) < 0)
    return NULL;
  if (!shell_safe (remote)) {
    vb_set_error ("--remote-virtback %s: use only letters, digits and "
                  "\"/._-+\"", remote);
    return NULL;
  }
  if (wordexp (rsh, &we, WRDE_NOCMD | WRDE_UNDEF) != 0 || we.we_wordc == 0) {
    vb_set_error ("--rsh '%s': not a command (no $(...) or `...`)", rsh);
    return NULL;
  }
  if (!(cmd = vb_xasprintf ("%s replica receive %s", remote, dir)))
    goto out;
  for (size_t i = 0; i < we.we_wordc; i++)
    if (add (&v, &n, we.we_wordv[i]) < 0)
      goto out;
  static const char *const keep[] = {
    "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
    "-o", "BatchMode=yes", "-o", "ConnectTimeout=30",
    /* the frames are not worth deflating twice per byte on busy cores */
    "-o", "Compression=no", "-T", NULL };
  /* AES-GCM first: with the CPU's AES instructions it costs half of ssh's
   * default chacha20 per byte (measured in bench/README.md). */
  static const char *const aes[] = {
    "-o", "Ciphers=aes128-gcm@openssh.com,chacha20-poly1305@openssh.com,"
    "aes256-gcm@openssh.com,aes128-ctr,aes256-ctr", NULL };
  for (size_t i = 0; keep[i]; i++)
    if (add (&v, &n, keep[i]) < 0)
      goto out;
  for (size_t i = 0; ciphers && aes[i]; i++)
    if (add (&v, &n, aes[i]) < 0)
      goto out;
  if ((port && (add (&v, &n, "-p") < 0 || add (&v, &n, port) < 0)) ||
      (user && (add (&v, &n, "-l") < 0 || add (&v, &n, user) < 0)) ||
      add (&v, &n, "--") < 0 || add (&v, &n, host) < 0 ||
      add (&v, &n, cmd) < 0)
    goto out;
  ok = 1;
 out:
  wordfree (&we);
  if (!ok) {
    vb_cleanup_strv (&v);
    return NULL;
  }
  return v;
}

/* The "ciphers" value `ssh -G` prints for ARGV (an ssh command line that
 * ends in the host and the remote command, which -G does without), or
 * NULL when ssh cannot tell. */
static char *
effective_ciphers (char *const *argv)
{
  size_t n = 0;

  while (argv[n])
    n++;
  CLEANUP_FREE char **q = calloc (n + 1, sizeof *q);
  if (n < 2 || !q)
    return NULL;
  q[0] = argv[0];
  q[1] = (char *) "-G";
  memcpy (q + 2, argv + 1, (n - 2) * sizeof *q);
  CLEANUP_FREE char *out = vb_proc_output (q, NULL);
  for (char *l = out; l; l = strchr (l, '\n'), l = l ? l + 1 : NULL)
    if (!strncmp (l, "ciphers ", 8))
      return strndup (l + 8, strcspn (l + 8, "\n"));
  return NULL;
}

bool
vb_ssh_config_ciphers (const char *rsh, const char *remote, const char *to)
{
  CLEANUP_STRV char **v = vb_ssh_argv (rsh, remote, to, false);
  char *none[] = { (char *) "ssh", (char *) "-F", (char *) "/dev/null",
                   (char *) "--", (char *) "localhost", (char *) "true",
                   NULL };

  if (!v || strcmp (vb_path_base (v[0]), "ssh"))
    return false;
  none[0] = v[0];
  CLEANUP_FREE char *theirs = effective_ciphers (v);
  CLEANUP_FREE char *plain = effective_ciphers (none);
  return theirs && plain && strcmp (theirs, plain) != 0;
}

int
vb_ssh_start (struct vb_ssh *s, char *const argv[], const char *log)
{
  int in[2] = { -1, -1 }, out[2] = { -1, -1 };

  memset (s, 0, sizeof *s);
  s->to = s->from = -1;
  if (pipe2 (in, O_CLOEXEC) < 0 || pipe2 (out, O_CLOEXEC) < 0) {
    vb_set_error_errno (errno, "pipe");
    goto err;
  }
  s->pid = fork ();
  if (s->pid < 0) {
    vb_set_error_errno (errno, "fork");
    goto err;
  }
  if (s->pid == 0) {
    int lfd = open (log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    /* ssh must not outlive a killed virtback: the standby then sees the
     * end of its input and discards the sync at once. */
    prctl (PR_SET_PDEATHSIG, SIGTERM);
    signal (SIGPIPE, SIG_DFL);
    if (dup2 (in[0], 0) < 0 || dup2 (out[1], 1) < 0 ||
        (lfd >= 0 && dup2 (lfd, 2) < 0))
      _exit (127);
    execvp (argv[0], argv);
    _exit (127);
  }
  close (in[0]);
  close (out[1]);
  s->to = in[1];
  s->from = out[0];
  s->log = strdup (log);
  return 0;
 err:
  for (int i = 0; i < 2; i++) {
    if (in[i] >= 0)
      close (in[i]);
    if (out[i] >= 0)
      close (out[i]);
  }
  return -1;
}

/* Close our ends, give ssh a moment to exit, and say how it ended:
 * its exit status, or -1 when it had to be killed. */
int
vb_ssh_end (struct vb_ssh *s)
{
  int st = 0, rc = -1;

  if (s->to >= 0)
    close (s->to);
  if (s->from >= 0)
    close (s->from);
  s->to = s->from = -1;
  if (s->pid > 0) {
    /* ssh exits within milliseconds of the receiver: small steps keep
     * the wait off each sync's time; 5 s at most. */
    for (int i = 0; i < 500; i++) {
      pid_t p = waitpid (s->pid, &st, WNOHANG);
      if (p == s->pid) {
        s->pid = 0;
        rc = WIFEXITED (st) ? WEXITSTATUS (st) : 128 + WTERMSIG (st);
        break;
      }
      usleep (10000);
    }
    if (s->pid > 0)
      vb_proc_stop (s->pid, 1000);
    s->pid = 0;
  }
  return rc;
}

/* After a failure: what ssh said beats "closed the connection". */
void
vb_ssh_explain (struct vb_ssh *s, int rc)
{
  char line[512] = "";

  if (s->log)
    vb_proc_log_line (s->log, line, sizeof line);
  if (rc == 255)
    vb_set_error ("ssh to the standby failed: %s", line[0] ? line
                  : "no message (check --to and --rsh)");
  else if (rc == 127)
    vb_set_error ("the standby cannot run virtback (%s): install it or give "
                  "--remote-virtback PATH", line[0] ? line : "not found");
  else if (line[0])
    vb_prefix_error ("%s", line);
}

void
vb_ssh_free (struct vb_ssh *s)
{
  vb_ssh_end (s);
  if (s->log)
    unlink (s->log);
  free (s->log);
  s->log = NULL;
}
