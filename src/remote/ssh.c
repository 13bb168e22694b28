/* SPDX-License-Identifier: GPL-3.0-or-later */
/* ssh.c: one command on the remote host, and the image and file steps
 * built on it.  Each step is one ssh session: the shell there gets the
 * words quoted, so no path or name is ever parsed by it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/proc.h"
#include "nbd/qemu_nbd.h"
#include "remote/remote.h"

static void master_wait (const struct vb_remote *r);

static int
needs_ssh (const struct vb_remote *r)
{
  if (r->ssh)
    return 0;
  vb_set_error ("host %s: this step runs QEMU's tools on the host over ssh: "
                "give a qemu+ssh:// URI", r->host);
  return -1;
}

char *
vb_remote_output (const struct vb_remote *r, const char *const *argv,
                  size_t *len)
{
  CLEANUP_FREE char *cmd = NULL;
  CLEANUP_STRV char **sargv = NULL;
  char *out;

  if (needs_ssh (r) < 0 || !(cmd = vb_shell_join (argv)))
    return NULL;
  master_wait (r);
  if (!(sargv = vb_remote_ssh_argv (r, cmd))) {
    vb_set_error ("out of memory");
    return NULL;
  }
  if (!(out = vb_proc_output (sargv, len)))
    vb_prefix_error ("host %s: %s", r->host, argv[0]);
  return out;
}

int
vb_remote_run (const struct vb_remote *r, const char *const *argv)
{
  char *out = vb_remote_output (r, argv, NULL);

  free (out);
  return out ? 0 : -1;
}

/* sh -c SCRIPT sh ARGS...: the script's words are fixed, the arguments
 * arrive as "$1"..., never as shell text. */
static char *
script_output (const struct vb_remote *r, const char *script,
               const char *const *args, size_t *len)
{
  const char *v[16] = { "sh", "-c", script, "sh" };
  size_t n = 4;

  for (; args && *args && n < 15; args++)
    v[n++] = *args;
  v[n] = NULL;
  return vb_remote_output (r, v, len);
}

static int
script_run (const struct vb_remote *r, const char *script,
            const char *const *args)
{
  char *out = script_output (r, script, args, NULL);

  free (out);
  return out ? 0 : -1;
}

struct vb_image_info *
vb_host_img_info (const struct vb_remote *r, const char *path)
{
  const char *argv[] = { "qemu-img", "info", "-U", "--output", "json", path,
                         NULL };
  CLEANUP_FREE char *out = NULL;
  size_t len;

  if (!r)
    return vb_qemu_img_info (path);
  if (path[0] != '/') {
    vb_set_error ("host %s: image path %s is not absolute", r->host, path);
    return NULL;
  }
  if (!(out = vb_remote_output (r, argv, &len)))
    return NULL;
  return vb_image_info_parse (out, len, path);
}

int
vb_host_img_bitmap (const struct vb_remote *r, const char *op,
                    const char *path, const char *name)
{
  const char *add[] = { "qemu-img", "bitmap", op, "--enable", "-f", "qcow2",
                        path, name, NULL };
  const char *other[] = { "qemu-img", "bitmap", op, "-f", "qcow2", path,
                          name, NULL };

  if (!r)
    return vb_qemu_img_bitmap (op, path, name);
  if (vb_remote_run (r, strcmp (op, "--add") ? other : add) < 0) {
    vb_prefix_error ("%s: bitmap %s", path, name);
    return -1;
  }
  return 0;
}

int
vb_host_img_create (const struct vb_remote *r, const char *path,
                    const char *format, const char *options, uint64_t size)
{
  char sz[32];
  const char *v[10] = { "qemu-img", "create", "-q", "-f", format };
  size_t n = 5;

  if (!r)
    return vb_qemu_img_create (path, format, options, size);
  snprintf (sz, sizeof sz, "%" PRIu64, size);
  if (options && *options)
    v[n++] = "-o", v[n++] = options;
  v[n++] = path;
  v[n++] = sz;
  v[n] = NULL;
  return vb_remote_run (r, v);
}

int
vb_remote_rmdtemp (const struct vb_remote *r, const char *dir)
{
  static const char script[] =
    "case \"$1\" in */virtback.*) ;; *) exit 1;; esac; "
    "rm -f \"$1\"/scratch-*.qcow2 && rmdir \"$1\" 2>/dev/null || "
    "! test -e \"$1\"";
  const char *args[] = { dir, NULL };

  return script_run (r, script, args);
}

char *
vb_remote_mkdir_realpath (const struct vb_remote *r, const char *dir)
{
  static const char script[] =
    "mkdir -p -m 0755 \"$1\" && realpath -e \"$1\"";
  const char *args[] = { dir, NULL };
  char *out = script_output (r, script, args, NULL);

  if (out)
    out[strcspn (out, "\n")] = '\0';
  return out;
}

int
vb_remote_exists (const struct vb_remote *r, const char *path)
{
  static const char script[] =
    "if test -e \"$1\" || test -L \"$1\"; then echo yes; else echo no; fi";
  const char *args[] = { path, NULL };
  CLEANUP_FREE char *out = script_output (r, script, args, NULL);

  return !out ? -1 : !strncmp (out, "yes", 3);
}

int
vb_remote_rename (const struct vb_remote *r, const char *from, const char *to)
{
  static const char script[] =
    "mv -fT -- \"$1\" \"$2\" && sync -f \"$(dirname \"$2\")\"";
  const char *args[] = { from, to, NULL };

  return script_run (r, script, args);
}

int
vb_remote_unlink (const struct vb_remote *r, const char *path)
{
  const char *argv[] = { "rm", "-f", "--", path, NULL };

  return vb_remote_run (r, argv);
}

/* The data goes as an argument, so it must be text without NUL (XML). */
int
vb_remote_put (const struct vb_remote *r, const char *path, const char *data,
               size_t len)
{
  static const char script[] =
    "t=\"$1.tmp.$$\" && (umask 077 && printf '%s' \"$2\" > \"$t\") && "
    "sync \"$t\" && mv -fT -- \"$t\" \"$1\" && sync -f \"$1\" || "
    "{ rm -f \"$t\"; exit 1; }";
  const char *args[] = { path, data, NULL };

  if (memchr (data, '\0', len) || strlen (data) != len) {
    vb_set_error ("%s: cannot send binary data to host %s", path, r->host);
    return -1;
  }
  return script_run (r, script, args);
}

/* ---- the shared connection ---- */

static pid_t
spawn_quiet (char **argv)
{
  pid_t parent = getpid (), pid = fork ();

  if (pid == 0) {
    int fd = open ("/dev/null", O_RDWR);
    prctl (PR_SET_PDEATHSIG, SIGTERM);
    if (getppid () != parent)
      _exit (1);
    setpgid (0, 0);
    if (fd >= 0)
      dup2 (fd, 0), dup2 (fd, 1), dup2 (fd, 2);
    execvp (argv[0], argv);
    _exit (127);
  }
  return pid;
}

/* Wait until the master listens, or is gone (then ssh connects on its
 * own: ControlMaster=no uses a master only where one listens). */
static void
master_wait (const struct vb_remote *r)
{
  struct timespec ts = { 0, 20 * 1000000 };

  for (int i = 0; i < r->timeout * 50 && vb_remote_session_pending (r); i++)
    nanosleep (&ts, NULL);
}

int
vb_remote_wait_session (const struct vb_remote *r)
{
  master_wait (r);
  return 0;
}

bool
vb_remote_session_pending (const struct vb_remote *r)
{
  struct stat st;

  return r->control && !(stat (r->control, &st) == 0 && S_ISSOCK (st.st_mode)) &&
         kill (r->master, 0) == 0 && waitpid (r->master, NULL, WNOHANG) == 0;
}

/* A killed run cannot remove its master's directory (the master died
 * with it): the next run does, once the pid in its owner file is gone. */
static void
rmdir_session (const char *dir)
{
  char p[128];

  snprintf (p, sizeof p, "%s/owner", dir);
  unlink (p);
  rmdir (dir);
}

static void
reap_dead_masters (void)
{
  DIR *d = opendir ("/tmp");
  struct dirent *e;

  if (!d)
    return;
  while ((e = readdir (d)) != NULL) {
    char p[128];
    pid_t pid;
    if (strncmp (e->d_name, "virtback-ssh.", 13) || strlen (e->d_name) != 19)
      continue;
    snprintf (p, sizeof p, "/tmp/%s/owner", e->d_name);
    pid = vb_proc_pid_file (p);
    if (pid <= 0 || kill (pid, 0) == 0 || errno != ESRCH)
      continue;
    unlink (p);
    snprintf (p, sizeof p, "/tmp/%s/cm", e->d_name);
    unlink (p);
    snprintf (p, sizeof p, "/tmp/%s", e->d_name);
    rmdir (p);
  }
  closedir (d);
}

static int
write_owner (const char *dir)
{
  char p[64], pid[32];
  int n = snprintf (pid, sizeof pid, "%d\n", (int) getpid ());
  int fd;

  snprintf (p, sizeof p, "%s/owner", dir);
  if ((fd = open (p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
    return -1;
  n = write (fd, pid, n) == n ? 0 : -1;
  close (fd);
  return n;
}

int
vb_remote_session_start (struct vb_remote *r)
{
  char dir[] = "/tmp/virtback-ssh.XXXXXX";
  CLEANUP_FREE char *path = NULL;
  CLEANUP_STRV char **argv = NULL;

  if (!r->ssh || r->control)
    return 0;
  reap_dead_masters ();
  if (!mkdtemp (dir))
    return 0;
  if (write_owner (dir) < 0 || asprintf (&path, "%s/cm", dir) < 0 ||
      !(argv = vb_remote_master_argv (r, path)) ||
      (r->master = spawn_quiet (argv)) <= 0) {
    r->master = 0;
    rmdir_session (dir);
    return 0;
  }
  r->control = STEAL (path);
  return 0;
}

void
vb_remote_session_end (struct vb_remote *r)
{
  char *slash;

  /* It may be reaped already (master_wait saw it end). */
  if (r->master > 0 && kill (r->master, SIGTERM) == 0)
    while (waitpid (r->master, NULL, 0) < 0 && errno == EINTR)
      ;
  r->master = 0;
  if (!r->control)
    return;
  unlink (r->control);
  if ((slash = strrchr (r->control, '/'))) {
    *slash = '\0';
    rmdir_session (r->control);
  }
  free (r->control);
  r->control = NULL;
}
