/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "common/proc.h"

extern char **environ;

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
    if (!p)
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

/* Drain both pipes together: reading them in turn could block the child
 * on a full stderr pipe. */
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
spawn_piped (char *const argv[], int out[2], int err[2], pid_t *pid)
{
  posix_spawn_file_actions_t fa;
  int r;

  posix_spawn_file_actions_init (&fa);
  posix_spawn_file_actions_adddup2 (&fa, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2 (&fa, err[1], STDERR_FILENO);
  posix_spawn_file_actions_addopen (&fa, STDIN_FILENO, "/dev/null",
                                    O_RDONLY, 0);
  r = posix_spawnp (pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  close (out[1]);
  close (err[1]);
  if (r != 0)
    vb_set_error_errno (r, "run %s", argv[0]);
  return r ? -1 : 0;
}

static int
reap (pid_t pid, int *status)
{
  while (waitpid (pid, status, 0) < 0)
    if (errno != EINTR)
      return -1;
  return 0;
}

char *
vb_proc_output (char *const argv[], size_t *len)
{
  int out[2], err[2], status, r;
  struct sbuf bout = { 0 }, berr = { 0 };
  pid_t pid;

  if (pipe2 (out, O_CLOEXEC) < 0) {
    vb_set_error_errno (errno, "pipe");
    return NULL;
  }
  if (pipe2 (err, O_CLOEXEC) < 0) {
    vb_set_error_errno (errno, "pipe");
    close (out[0]);
    close (out[1]);
    return NULL;
  }
  r = spawn_piped (argv, out, err, &pid);
  if (r == 0)
    r = drain (out[0], err[0], &bout, &berr);
  close (out[0]);
  close (err[0]);
  if (r == 0 && reap (pid, &status) == 0 && WIFEXITED (status) &&
      WEXITSTATUS (status) == 0) {
    free (berr.data);
    if (len)
      *len = bout.len;
    return bout.data ? bout.data : strdup ("");
  }
  if (r == 0)
    vb_set_error ("%s failed: %.*s", argv[0],
                  (int) strcspn (berr.data ? berr.data : "", "\n"),
                  berr.data ? berr.data : "");
  free (bout.data);
  free (berr.data);
  return NULL;
}

int
vb_proc_run (char *const argv[])
{
  char *out = vb_proc_output (argv, NULL);

  free (out);
  return out ? 0 : -1;
}

pid_t
vb_proc_spawn (char *const argv[], const char *log)
{
  pid_t parent = getpid ();
  pid_t pid = fork ();

  if (pid < 0) {
    vb_set_error_errno (errno, "fork %s", argv[0]);
    return -1;
  }
  if (pid == 0) {
    int devnull = open ("/dev/null", O_RDWR);
    int lfd = log ? open (log, O_WRONLY | O_CREAT | O_TRUNC, 0600) : -1;

    prctl (PR_SET_PDEATHSIG, SIGTERM);
    if (getppid () != parent)
      _exit (1);
    setpgid (0, 0);            /* the terminal's ^C is ours to handle */
    if (devnull >= 0)
      dup2 (devnull, 0), dup2 (devnull, 1), dup2 (devnull, 2);
    if (lfd >= 0)
      dup2 (lfd, 2);
    execvp (argv[0], argv);
    _exit (127);
  }
  return pid;
}

int
vb_proc_exited (pid_t pid)
{
  int status;
  pid_t r = waitpid (pid, &status, WNOHANG);

  return r == pid ? 1 : r == 0 ? 0 : -1;
}

/* Wait up to MS for PID to exit, woken the moment it does (a pidfd), or in
 * 10 ms steps where the kernel has no pidfds.  true once it has exited;
 * it is not reaped. */
static bool
exit_within (pid_t pid, int ms)
{
  struct timespec ts = { 0, 10 * 1000000 };
  int fd = pidfd_open (pid, 0);

  if (fd >= 0) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int r = poll (&p, 1, ms);
    close (fd);
    if (r >= 0 || errno != EINTR)
      return r > 0;
  }
  for (int waited = 0; waited < ms; waited += 10) {
    siginfo_t si = { 0 };
    if (waitid (P_PID, pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        si.si_pid == pid)
      return true;
    nanosleep (&ts, NULL);
  }
  return false;
}

void
vb_proc_stop (pid_t pid, int grace_ms)
{
  int status;

  if (pid <= 0)
    return;
  kill (pid, SIGTERM);
  if (!exit_within (pid, grace_ms))
    kill (pid, SIGKILL);
  reap (pid, &status);
}

void
vb_proc_log_line (const char *file, char *buf, size_t len)
{
  CLEANUP_FCLOSE FILE *fp = file ? fopen (file, "re") : NULL;

  buf[0] = '\0';
  if (fp && fgets (buf, len, fp))
    buf[strcspn (buf, "\n")] = '\0';
}

pid_t
vb_proc_pid_file (const char *path)
{
  CLEANUP_FREE char *text = path ? vb_read_file (path, NULL) : NULL;
  long pid = text ? strtol (text, NULL, 10) : 0;

  return pid > 0 ? (pid_t) pid : 0;
}

bool
vb_proc_has_arg (pid_t pid, const char *arg)
{
  char path[64], buf[8192];
  CLEANUP_FCLOSE FILE *fp = NULL;
  size_t len;

  snprintf (path, sizeof path, "/proc/%d/cmdline", (int) pid);
  if (!(fp = fopen (path, "re")))
    return false;
  len = fread (buf, 1, sizeof buf - 1, fp);
  buf[len] = '\0';
  for (size_t i = 0; i < len; i += strlen (buf + i) + 1)
    if (strcmp (buf + i, arg) == 0)
      return true;
  return false;
}

/* PID's parent, from /proc/PID/stat (after the command's closing paren). */
static pid_t
parent_of (long pid)
{
  char path[64], *paren;
  CLEANUP_FREE char *stat = NULL;
  int ppid;

  snprintf (path, sizeof path, "/proc/%ld/stat", pid);
  if (!(stat = vb_read_file (path, NULL)) || !(paren = strrchr (stat, ')')) ||
      sscanf (paren + 1, " %*c %d", &ppid) != 1)
    return -1;
  return ppid;
}

/* Does one of PID's arguments hold NEEDLE? */
static bool
cmdline_has (long pid, const char *needle)
{
  char path[64];
  CLEANUP_FREE char *cmd = NULL;
  size_t len = 0;

  snprintf (path, sizeof path, "/proc/%ld/cmdline", pid);
  if (!(cmd = vb_read_file (path, &len)))
    return false;
  for (size_t i = 0; i < len; i += strlen (cmd + i) + 1)
    if (strstr (cmd + i, needle))
      return true;
  return false;
}

int
vb_proc_signal_matching (const char *needle, pid_t parent, int sig)
{
  DIR *d = opendir ("/proc");
  struct dirent *e;
  int n = 0;

  while (d && (e = readdir (d))) {
    long pid = strtol (e->d_name, NULL, 10);
    if (pid <= 0 || pid == getpid () ||
        (parent > 0 && parent_of (pid) != parent) || !cmdline_has (pid, needle))
      continue;
    n++;
    if (sig)
      kill (pid, sig);
  }
  if (d)
    closedir (d);
  return n;
}
