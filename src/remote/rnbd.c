/* SPDX-License-Identifier: GPL-3.0-or-later */
/* rnbd.c: a qemu-nbd on the remote host, serving one image on TCP.
 *
 * Why TCP on --nbd-ip and not a tunnel through ssh: it is the very data
 * path of a running domain's backup job (QEMU serving on TCP), so one
 * connect, one TLS set-up (the host's /etc/pki/qemu, --tls) and one set
 * of timeouts serve both; and ssh's single encrypted stream would cap the
 * copy at one core's cipher speed, where NBD's connections run side by
 * side.
 *
 * The remote side is a small bash script (its words fixed, the image and
 * options passed as arguments): qemu-nbd --fork returns once it listens,
 * the script prints "ready", then reads keepalive lines from ssh; "stop",
 * the end of its stdin (ssh or virtback gone) or no line for the timeout
 * (the link cut) all end qemu-nbd and remove its pid file.  It runs
 * with --norc: bash started by a shell that sshd started reads ~/.bashrc
 * again (its shell level is 1 once the login shell exec'd it), which on a
 * host whose .bashrc does much (here pyenv init) costs as much as the
 * session itself.
 *
 * A backup job's private directory there (vb_rdir_*) is held the same
 * way: one session makes it, says where, and removes it on "stop", on
 * its stdin's end or when the keepalives stop; a new session and login
 * shell for each of the two steps would cost more than the rest of the
 * set-up together on a busy host. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "remote/remote.h"

static const char script[] =
  "t=$1; shift; "
  "d=$(mktemp -d /tmp/virtback-nbd.XXXXXX) || exit 1; "
  "trap 'rm -rf \"$d\"' EXIT; "
  "if ! qemu-nbd --fork --pid-file=\"$d/pid\" \"$@\" </dev/null >/dev/null "
  "2>\"$d/log\"; then echo \"qemu-nbd: $(head -n 1 \"$d/log\")\"; exit 1; fi; "
  "p=$(cat \"$d/pid\"); echo ready; "
  "while read -r -t \"$t\" l && [ \"$l\" != stop ]; do :; done; "
  "kill \"$p\" 2>/dev/null; "
  "while kill -0 \"$p\" 2>/dev/null; do sleep 0.1; done";

/* The directory is made at once, private (mkdtemp's 0700); QEMU's group
 * comes as the first line once the domain's XML has told which it is, or
 * "stop" when no job needs the directory after all. */
static const char dir_script[] =
  "t=$1; d=$(mktemp -d \"$2/virtback.XXXXXX\") || exit 1; "
  "if ! read -r -t \"$t\" g || [ \"$g\" = stop ]; then rmdir \"$d\"; exit 0; fi; "
  "chgrp \"$g\" \"$d\" && chmod 0770 \"$d\" || { rmdir \"$d\"; exit 1; }; "
  "printf '%s\\nready\\n' \"$d\"; "
  "while read -r -t \"$t\" l && [ \"$l\" != stop ]; do :; done; "
  "rm -f \"$d\"/scratch-*.qcow2; rmdir \"$d\" 2>/dev/null || ! test -e \"$d\"";

#define MAXARGS 40

/* The remote command: bash --norc -c SCRIPT bash TIMEOUT qemu-nbd-options... */
static char *
remote_cmd (const struct vb_rnbd_opts *o, int port, int timeout)
{
  char t[16], p[16];
  CLEANUP_FREE char *fmt = NULL, *exp = NULL, *bm = NULL, *tls = NULL;
  const char *v[MAXARGS] = { "bash", "--norc", "-c", script,
                             "bash", t };
  size_t n = 6;

  snprintf (t, sizeof t, "%d", timeout);
  snprintf (p, sizeof p, "%d", port);
  if (asprintf (&fmt, "--format=%s", o->format) < 0 ||
      asprintf (&exp, "--export-name=%s", o->export) < 0 ||
      (o->bitmap && asprintf (&bm, "--bitmap=%s", o->bitmap) < 0) ||
      (o->tls_dir && asprintf (&tls, "tls-creds-x509,id=vbtls0,dir=%s,"
                               "endpoint=server,verify-peer=on",
                               o->tls_dir) < 0))
    return NULL;
  v[n++] = "--bind", v[n++] = o->addr, v[n++] = "--port", v[n++] = p;
  v[n++] = fmt, v[n++] = exp, v[n++] = "--persistent", v[n++] = "--shared=10";
  if (o->readonly)
    v[n++] = "--read-only";
  if (bm)
    v[n++] = bm;
  if (tls)
    v[n++] = "--object", v[n++] = tls, v[n++] = "--tls-creds=vbtls0";
  for (const char *const *e = o->extra; e && *e && n < MAXARGS - 3; e++)
    v[n++] = *e;
  v[n++] = "--";
  v[n++] = o->image;
  v[n] = NULL;
  return vb_shell_join (v);
}

static pid_t
spawn (char **argv, int *in, int *out)
{
  int pi[2], po[2];
  pid_t parent = getpid (), pid;

  if (pipe2 (pi, O_CLOEXEC) < 0)
    return -1;
  if (pipe2 (po, O_CLOEXEC) < 0) {
    close (pi[0]), close (pi[1]);
    return -1;
  }
  if ((pid = fork ()) == 0) {
    prctl (PR_SET_PDEATHSIG, SIGTERM);
    if (getppid () != parent)
      _exit (1);
    setpgid (0, 0);            /* the terminal's ^C is ours to handle */
    dup2 (pi[0], 0), dup2 (po[1], 1), dup2 (po[1], 2);
    execvp (argv[0], argv);
    _exit (127);
  }
  close (pi[0]), close (po[1]);
  if (pid < 0) {
    close (pi[1]), close (po[0]);
    return -1;
  }
  *in = pi[1];
  *out = po[0];
  return pid;
}

/* Read lines until "ready" (1), the end (0: *LAST holds the last line
 * it printed) or the timeout or a stop request (-1). */
static int
wait_ready (int fd, int timeout, volatile sig_atomic_t *cancel, char *last,
            size_t cap)
{
  char buf[4096];
  size_t len = 0;
  double t0 = vb_mono ();

  last[0] = '\0';
  for (;;) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    char *nl;
    ssize_t r;
    if (cancel && __atomic_load_n (cancel, __ATOMIC_RELAXED))
      return -1;
    if (vb_mono () - t0 > timeout)
      return -1;
    if (poll (&p, 1, 100) <= 0)
      continue;
    if ((r = read (fd, buf + len, sizeof buf - 1 - len)) <= 0)
      return 0;
    len += r;
    buf[len] = '\0';
    while ((nl = strchr (buf, '\n'))) {
      *nl = '\0';
      if (!strcmp (buf, "ready"))
        return 1;
      if (buf[0])
        snprintf (last, cap, "%.*s", (int) (cap - 1), buf);
      memmove (buf, nl + 1, len - (nl + 1 - buf) + 1);
      len -= nl + 1 - buf;
    }
    if (len == sizeof buf - 1)
      len = 0;
  }
}

/* With Q's lock held: a keepalive line every third of the timeout until
 * stopped (a directory's session only once its group was sent: its first
 * line is the group). */
static void
keepalives (struct vb_rnbd *q)
{
  int every = q->timeout > 6 ? q->timeout / 3 : 2;

  while (!q->stopping) {
    struct timespec ts;
    vb_cond_deadline (&ts, every * 1000L);
    pthread_cond_timedwait (&q->cv, &q->mu, &ts);
    if (!q->stopping && (!q->owned || q->grouped) &&
        write (q->in, "\n", 1) < 0)
      break;
  }
}

static void *
ping (void *arg)
{
  struct vb_rnbd *q = arg;

  pthread_mutex_lock (&q->mu);
  keepalives (q);
  pthread_mutex_unlock (&q->mu);
  return NULL;
}

static void
reap_ssh (struct vb_rnbd *q, int grace_ms)
{
  int st;
  struct timespec ts = { 0, 20 * 1000000 };

  for (int w = 0; w < grace_ms; w += 20) {
    if (waitpid (q->pid, &st, WNOHANG) == q->pid) {
      q->status = st;
      q->pid = 0;
      return;
    }
    nanosleep (&ts, NULL);
  }
  kill (q->pid, SIGTERM);
  while (waitpid (q->pid, &st, 0) < 0 && errno == EINTR)
    ;
  q->status = -1;
  q->pid = 0;
}

/* One port: 1 serving, 0 the port is taken, -1 failed. */
static int
try_port (const struct vb_remote *r, struct vb_rnbd *q,
          const struct vb_rnbd_opts *o, int port)
{
  CLEANUP_FREE char *cmd = remote_cmd (o, port, q->timeout);
  CLEANUP_STRV char **argv = cmd ? vb_remote_ssh_argv (r, cmd) : NULL;
  char last[512];
  int out = -1, ready;

  if (!argv) {
    vb_set_error ("out of memory");
    return -1;
  }
  if ((q->pid = spawn (argv, &q->in, &out)) < 0) {
    vb_set_error_errno (errno, "host %s: run %s", r->host, argv[0]);
    q->pid = 0;
    return -1;
  }
  ready = wait_ready (out, q->timeout, o->cancel, last, sizeof last);
  close (out);
  if (ready == 1) {
    q->port = port;
    return 1;
  }
  close (q->in);
  q->in = -1;
  reap_ssh (q, ready == 0 ? 5000 : 0);
  if (ready == 0 && strstr (last, "Address already in use"))
    return 0;
  if (ready < 0)
    vb_set_error ("host %s: qemu-nbd for %s did not start within %d s: "
                  "check the link and ssh to the host", r->host, o->image,
                  q->timeout);
  else
    vb_set_error ("host %s: qemu-nbd for %s: %s", r->host, o->image,
                  last[0] ? last : "ssh ended without a message");
  return -1;
}

static void
init_session (const struct vb_remote *r, struct vb_rnbd *q)
{
  memset (q, 0, sizeof *q);
  q->in = q->out = -1;
  q->timeout = r->timeout > 0 ? r->timeout : VB_REMOTE_TIMEOUT;
  pthread_mutex_init (&q->mu, NULL);
  pthread_cond_init (&q->cv, NULL);
  q->inited = true;
}

int
vb_rnbd_start (const struct vb_remote *r, struct vb_rnbd *q,
               const struct vb_rnbd_opts *o)
{
  int ret = 0;

  init_session (r, q);
  if (vb_remote_run (r, (const char *const[]) { "true", NULL }) < 0)
    return -1;
  for (int p = o->port_lo; p <= o->port_hi && ret == 0; p++)
    ret = try_port (r, q, o, p);
  if (ret == 0)
    vb_set_error ("host %s: every port of %d-%d is taken on %s: give "
                  "another --nbd-port", r->host, o->port_lo, o->port_hi,
                  o->addr);
  if (ret <= 0)
    return -1;
  q->pinging = pthread_create (&q->ping, NULL, ping, q) == 0;
  return 0;
}

static void
end_session (struct vb_rnbd *q)
{
  if (write (q->in, "stop\n", 5) < 0) {
    /* ssh is gone already: its end stopped the server */
  }
  close (q->in);
  q->in = -1;
  reap_ssh (q, (q->timeout + 5) * 1000);
}

void
vb_rnbd_stop (struct vb_rnbd *q)
{
  if (!q->inited)
    return;
  pthread_mutex_lock (&q->mu);
  q->stopping = true;
  pthread_cond_broadcast (&q->cv);
  pthread_mutex_unlock (&q->mu);
  if (q->pinging)
    pthread_join (q->ping, NULL);
  q->pinging = false;
  if (q->out >= 0)
    close (q->out);
  q->out = -1;
  if (!q->owned && q->pid > 0)
    end_session (q);
  vb_cleanup_strv (&q->argv);
  q->argv = NULL;
  pthread_mutex_destroy (&q->mu);
  pthread_cond_destroy (&q->cv);
  q->inited = false;
}

/* The session's own thread: it waits for the shared connection, starts
 * ssh, sends keepalives once the group is sent, and ends the session
 * itself.  It must: the kernel sends PR_SET_PDEATHSIG (spawn) when the
 * thread that forked the child ends, not the process. */
static void *
rdir_thread (void *arg)
{
  struct vb_rnbd *q = arg;
  pid_t pid;

  /* A host that does not answer makes the run fail and stop this
   * session while the shared connection still tries: no ssh then. */
  pthread_mutex_lock (&q->mu);
  for (double t0 = vb_mono (); !q->stopping &&
       vb_remote_session_pending (q->host) && vb_mono () - t0 < q->timeout;) {
    struct timespec ts;
    vb_cond_deadline (&ts, 20);
    pthread_cond_timedwait (&q->cv, &q->mu, &ts);
  }
  pid = q->stopping ? 0 : spawn (q->argv, &q->in, &q->out);
  if (pid < 0)
    vb_set_error_errno (errno, "run %s", q->argv[0]);
  else if (pid == 0)
    vb_set_error ("stopped");
  q->pid = pid > 0 ? pid : 0;
  q->spawned = pid > 0;
  vb_error_save (&q->start_err);
  q->started = true;
  pthread_cond_broadcast (&q->cv);
  if (q->pid > 0)
    keepalives (q);
  pthread_mutex_unlock (&q->mu);
  if (q->pid > 0)
    end_session (q);
  return NULL;
}

/* Wait for the thread to have started ssh: 0, or -1 with its error. */
static int
rdir_started (struct vb_rnbd *q)
{
  int r;

  pthread_mutex_lock (&q->mu);
  while (!q->started)
    pthread_cond_wait (&q->cv, &q->mu);
  r = q->pid > 0 ? 0 : -1;
  pthread_mutex_unlock (&q->mu);
  if (r < 0)
    vb_error_restore (&q->start_err);
  return r;
}

int
vb_rdir_start (const struct vb_remote *r, struct vb_rnbd *q,
               const char *base)
{
  char t[16];
  const char *v[] = { "bash", "--norc", "-c", dir_script, "bash", t, base,
                      NULL };
  CLEANUP_FREE char *cmd = NULL;

  init_session (r, q);
  q->host = r;
  q->owned = true;
  snprintf (t, sizeof t, "%d", q->timeout);
  if (strchr (base, '\n')) {
    vb_set_error ("-S %s: a directory name with a newline", base);
    return -1;
  }
  if (!(cmd = vb_shell_join (v)) || !(q->argv = vb_remote_ssh_argv (r, cmd))) {
    vb_set_error ("out of memory");
    return -1;
  }
  if (!(q->pinging = pthread_create (&q->ping, NULL, rdir_thread, q) == 0)) {
    vb_set_error ("host %s: cannot start a thread", r->host);
    return -1;
  }
  return 0;
}

int
vb_rdir_group (const struct vb_remote *r, struct vb_rnbd *q, gid_t gid)
{
  char g[24];
  int n = snprintf (g, sizeof g, "%u\n", (unsigned) gid);

  if (q->grouped)
    return 0;
  if (rdir_started (q) < 0) {
    vb_prefix_error ("host %s", r->host);
    return -1;
  }
  pthread_mutex_lock (&q->mu);
  q->grouped = true;
  /* A session that ended says why on its output: vb_rdir_wait reports. */
  if (write (q->in, g, n) != n)
    vb_debug ("host %s: the directory's session ended: %s", r->host,
              strerror (errno));
  pthread_mutex_unlock (&q->mu);
  return 0;
}

char *
vb_rdir_wait (const struct vb_remote *r, struct vb_rnbd *q, const char *base,
              volatile sig_atomic_t *cancel)
{
  char last[4096] = "";
  int ready = !q->inited || rdir_started (q) < 0 || q->out < 0 ? -1 :
    wait_ready (q->out, q->timeout, cancel, last, sizeof last);

  if (q->out >= 0)
    close (q->out);
  q->out = -1;
  if (ready == 1 && last[0] == '/') {
    char *path = strdup (last);
    if (path)
      return path;
    vb_set_error ("out of memory");
    vb_rnbd_stop (q);
    return NULL;
  }
  if (ready < 0)
    vb_set_error ("host %s: no private directory in %s within %d s: check "
                  "the link and ssh to the host", r->host, base, q->timeout);
  else
    vb_set_error ("host %s: cannot create a private directory in %s there "
                  "(-S): %s", r->host, base,
                  last[0] ? last : "ssh ended without a message");
  vb_rnbd_stop (q);
  return NULL;
}

int
vb_rdir_stop (struct vb_rnbd *q)
{
  bool held = q->inited;

  vb_rnbd_stop (q);
  if (held && q->spawned && !(q->status >= 0 && WIFEXITED (q->status) &&
                WEXITSTATUS (q->status) == 0)) {
    vb_set_error ("the directory stays there: remove it by hand");
    return -1;
  }
  return 0;
}
