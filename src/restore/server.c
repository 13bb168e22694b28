/* server.c: the helper processes of a restore: qemu-img to create images,
 * qemu-nbd to serve them.  See internal.h.  The children are ours: we
 * start them, wait for them and kill them; none outlives virtback. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "restore/internal.h"

#define ERRTAIL 512
/* Writes in flight: 16 requests of 2 MiB (32 MiB of buffers). */
#define NBUFS 16
#define BUFSIZE (2u << 20)

static void
sleep_ms (long ms)
{
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  nanosleep (&ts, NULL);
}

static pid_t
wait_child (pid_t pid, int *status, int flags)
{
  pid_t r;

  do
    r = waitpid (pid, status, flags);
  while (r == -1 && errno == EINTR);
  return r;
}

/* Keep the last non-empty line of the child's stderr for the message. */
static void
read_tail (int fd, char *tail, size_t len)
{
  char buf[4096], line[ERRTAIL];
  size_t used = 0;
  ssize_t n;

  tail[0] = '\0';
  while ((n = read (fd, buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      break;
    for (ssize_t i = 0; i < n; i++) {
      if (buf[i] != '\n') {
        if (used + 1 < sizeof line)
          line[used++] = buf[i];
      }
      else if (used) {
        line[used] = '\0';
        snprintf (tail, len, "%s", line);
        used = 0;
      }
    }
  }
  if (used) {
    line[used] = '\0';
    snprintf (tail, len, "%s", line);
  }
}

int
vb_run (char *const argv[])
{
  char tail[ERRTAIL];
  int pfd[2], status;
  pid_t pid;

  if (pipe2 (pfd, O_CLOEXEC) == -1) {
    vb_set_error_errno (errno, "pipe");
    return -1;
  }
  pid = fork ();
  if (pid == -1) {
    vb_set_error_errno (errno, "fork %s", argv[0]);
    close (pfd[0]);
    close (pfd[1]);
    return -1;
  }
  if (pid == 0) {
    dup2 (pfd[1], 2);
    execvp (argv[0], argv);
    fprintf (stderr, "cannot run %s: %s\n", argv[0], strerror (errno));
    _exit (127);
  }
  close (pfd[1]);
  read_tail (pfd[0], tail, sizeof tail);
  close (pfd[0]);
  if (wait_child (pid, &status, 0) == -1 ||
      !WIFEXITED (status) || WEXITSTATUS (status) != 0) {
    vb_set_error ("%s failed: %s", argv[0], tail[0] ? tail : "killed");
    return -1;
  }
  return 0;
}

static int
spawn_server (struct vb_server *s, const char *image, const char *format)
{
  CLEANUP_FREE char *sockopt = NULL, *fmtopt = NULL;
  pid_t parent = getpid ();

  if (asprintf (&sockopt, "--socket=%s", s->sock) < 0 ||
      asprintf (&fmtopt, "--format=%s", format) < 0) {
    vb_set_error_errno (ENOMEM, "qemu-nbd");
    return -1;
  }
  s->pid = fork ();
  if (s->pid == -1) {
    vb_set_error_errno (errno, "fork qemu-nbd");
    return -1;
  }
  if (s->pid == 0) {
    char *argv[] = { "qemu-nbd", sockopt, fmtopt, "--cache=writeback",
                     "--aio=threads", "--discard=unmap", "--detect-zeroes=unmap",
                     (char *) image, NULL };
    int devnull = open ("/dev/null", O_RDWR);
    int log = open (s->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    prctl (PR_SET_PDEATHSIG, SIGTERM);
    if (getppid () != parent)
      _exit (1);
    setpgid (0, 0);             /* the terminal's ^C is ours to handle */
    if (devnull >= 0)
      dup2 (devnull, 0), dup2 (devnull, 1);
    if (log >= 0)
      dup2 (log, 2);
    execvp (argv[0], argv);
    _exit (127);
  }
  return 0;
}

/* Connect once the server listens; give up if it exits or stays silent. */
static struct vb_nbd_writer *
connect_server (struct vb_server *s)
{
  for (int i = 0; i < 400; i++) {
    int status;

    if (wait_child (s->pid, &status, WNOHANG) == s->pid) {
      char tail[ERRTAIL];
      CLEANUP_CLOSE int fd = open (s->log, O_RDONLY | O_CLOEXEC);

      s->pid = 0;
      tail[0] = '\0';
      if (fd >= 0)
        read_tail (fd, tail, sizeof tail);
      vb_set_error ("qemu-nbd exited: %s", tail[0] ? tail : "no message");
      return NULL;
    }
    if (vb_restore_stop) {
      vb_set_error ("interrupted");
      return NULL;
    }
    if (access (s->sock, F_OK) == 0) {
      struct vb_nbd_writer *w = vb_nbd_writer_open (s->sock, NBUFS, BUFSIZE,
                                                    &vb_restore_stop);
      if (w)
        return w;
    }
    sleep_ms (25);
  }
  vb_set_error ("qemu-nbd did not listen on %s within 10 seconds", s->sock);
  return NULL;
}

struct vb_nbd_writer *
vb_server_start (struct vb_server *s, const char *image, const char *format)
{
  const char *tmp = getenv ("TMPDIR");
  struct vb_nbd_writer *w;

  memset (s, 0, sizeof *s);
  if (asprintf (&s->dir, "%s/virtback-restore.XXXXXX", tmp ? tmp : "/tmp") < 0)
    s->dir = NULL;
  if (!s->dir || !mkdtemp (s->dir)) {
    vb_set_error_errno (errno, "create a private socket directory");
    free (s->dir);
    s->dir = NULL;
    return NULL;
  }
  s->sock = vb_path_join (s->dir, "nbd.sock");
  s->log = vb_path_join (s->dir, "qemu-nbd.log");
  if (!s->sock || !s->log || spawn_server (s, image, format) == -1) {
    vb_server_stop (s);
    return NULL;
  }
  w = connect_server (s);
  if (!w) {
    CLEANUP_FREE char *msg = strdup (vb_get_error ());
    vb_server_stop (s);
    vb_set_error ("NBD server for %s: %s", image, msg ? msg : "failed");
  }
  return w;
}

void
vb_server_stop (struct vb_server *s)
{
  if (s->pid > 0) {
    int status;

    /* After the client disconnected qemu-nbd exits by itself; the signal
     * covers the error paths. */
    for (int i = 0; i < 200; i++) {
      if (wait_child (s->pid, &status, WNOHANG) == s->pid)
        goto reaped;
      if (i == 20)
        kill (s->pid, SIGTERM);
      sleep_ms (25);
    }
    kill (s->pid, SIGKILL);
    wait_child (s->pid, &status, 0);
  }
 reaped:
  s->pid = 0;
  if (s->sock)
    unlink (s->sock);
  if (s->log)
    unlink (s->log);
  if (s->dir)
    rmdir (s->dir);
  free (s->sock);
  free (s->log);
  free (s->dir);
  s->sock = s->log = s->dir = NULL;
}
