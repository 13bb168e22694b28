/* SPDX-License-Identifier: GPL-3.0-or-later */
/* map.c: run nbdkit with virtback's plugin for one backup point. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backupset/chain.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "target/target.h"
#include "common/fsutil.h"
#include "common/proc.h"
#include "map/internal.h"
#include "map/map.h"

#define PLUGIN_NAME "nbdkit-virtback-plugin.so"
#define START_TIMEOUT_MS 60000

/* The disks of the point, checked as a restore would check them. */
static int
check_point (const struct vb_map_opts *o, struct vb_map *m)
{
  struct vb_target *t = vb_target_dir_open (o->input, NULL);
  struct vb_chain *c = t ? vb_chain_scan (t) : NULL;
  size_t n = 0;
  int r = 0;

  if (!c) {
    vb_target_close (t);
    return -1;
  }
  m->disks = calloc (c->ndisks + 1, sizeof *m->disks);
  for (size_t i = 0; m->disks && i < c->ndisks && r == 0; i++) {
    struct vb_chain_file **files;
    if (o->disk && strcmp (o->disk, c->disks[i].disk))
      continue;
    if (!(files = vb_chain_select (c, &c->disks[i], o->until)))
      r = -1;
    else if (n == 0 && files[0]) {
      size_t k = 0;
      while (files[k + 1])
        k++;
      m->size = files[k]->meta.virtual_size;
    }
    if (r == 0 && !(m->disks[n++] = strdup (c->disks[i].disk)))
      r = -1, vb_set_error_errno (ENOMEM, "map");
    free (files);
  }
  if (!m->disks)
    r = -1, vb_set_error_errno (ENOMEM, "map");
  else if (r == 0 && n == 0)
    r = -1, vb_set_error ("%s holds no disk %s: see 'virtback dump -i %s'",
                          o->input, o->disk ? o->disk : "at all", o->input);
  vb_chain_free (c);
  return r;
}

/* Beside the program in a build tree, else where it is installed. */
static char *
plugin_path (const struct vb_map_opts *o)
{
  char exe[PATH_MAX], *slash, *p = NULL;
  ssize_t n;

  if (o->plugin || getenv ("VIRTBACK_PLUGIN"))
    return strdup (o->plugin ? o->plugin : getenv ("VIRTBACK_PLUGIN"));
  if ((n = readlink ("/proc/self/exe", exe, sizeof exe - 1)) > 0) {
    exe[n] = '\0';
    if ((slash = strrchr (exe, '/'))) {
      *slash = '\0';
      if (asprintf (&p, "%s/" PLUGIN_NAME, exe) > 0 && access (p, R_OK) == 0)
        return p;
      free (p);
    }
  }
  return strdup (VB_PLUGIN_DIR "/" PLUGIN_NAME);
}

/* "ADDR:PORT", ADDR maybe "[v6]": split at the last colon. */
static int
split_listen (const char *s, char **addr, char **port)
{
  const char *colon = strrchr (s, ':');

  if (!colon || colon == s || !colon[1]) {
    vb_set_error ("--listen %s: give ADDRESS:PORT", s);
    return -1;
  }
  *addr = strndup (s, colon - s);
  *port = strdup (colon + 1);
  if (*addr && **addr == '[' && (*addr)[strlen (*addr) - 1] == ']') {
    memmove (*addr, *addr + 1, strlen (*addr) - 2);
    (*addr)[strlen (*addr) - 2] = '\0';
  }
  return *addr && *port ? 0 : -1;
}

struct argv {
  char *v[32];
  size_t n;
};

static void
arg (struct argv *a, char *s)
{
  if (a->n < 31)
    a->v[a->n++] = s;
}

static void
free_argv (struct argv *a)
{
  for (size_t i = 0; i < a->n; i++)
    free (a->v[i]);
}

static char *
fmt (const char *f, const char *x)
{
  char *s;

  return asprintf (&s, f, x) < 0 ? NULL : s;
}

static int
build_argv (const struct vb_map_opts *o, struct vb_map *m, struct argv *a,
            const char *addr, const char *port)
{
  arg (a, strdup ("nbdkit"));
  arg (a, strdup ("-f"));
  if (!o->detached)
    arg (a, strdup ("--exit-with-parent"));
  arg (a, fmt ("-P%s/nbdkit.pid", m->rundir));
  if (o->socket) {
    arg (a, strdup ("-U"));
    arg (a, strdup (o->socket));
  }
  else {
    arg (a, fmt ("--ipaddr=%s", addr));
    arg (a, fmt ("--port=%s", port));
  }
  if (o->tls) {
    arg (a, strdup ("--tls=require"));
    arg (a, fmt ("--tls-certificates=%s", o->tls_dir ? o->tls_dir
                                                     : "/etc/pki/qemu"));
  }
  if (o->writable)
    arg (a, strdup ("--filter=cow"));
  else
    arg (a, strdup ("-r"));
  arg (a, plugin_path (o));
  arg (a, fmt ("dir=%s", o->input));
  if (o->until)
    arg (a, fmt ("until=%s", o->until));
  if (o->disk)
    arg (a, fmt ("disk=%s", o->disk));
  for (size_t i = 0; i < a->n; i++)
    if (!a->v[i]) {
      vb_set_error_errno (ENOMEM, "nbdkit arguments");
      return -1;
    }
  return 0;
}

/* nbdkit writes its pid file once it listens. */
static int
wait_ready (struct vb_map *m)
{
  CLEANUP_FREE char *pidf = vb_path_join (m->rundir, "nbdkit.pid");
  CLEANUP_FREE char *log = vb_path_join (m->rundir, "nbdkit.log");
  struct timespec ts = { 0, 10 * 1000000 };
  char line[512];

  for (int waited = 0; waited < START_TIMEOUT_MS; waited += 10) {
    if (pidf && access (pidf, F_OK) == 0)
      return 0;
    if (vb_proc_exited (m->pid) != 0) {
      m->pid = -1;
      vb_proc_log_line (log, line, sizeof line);
      vb_set_error ("the NBD server did not start: %s", *line ? line
                    : "nbdkit exited");
      return -1;
    }
    nanosleep (&ts, NULL);
  }
  vb_set_error ("the NBD server did not start within %d s",
                START_TIMEOUT_MS / 1000);
  return -1;
}

static int
make_uris (const struct vb_map_opts *o, struct vb_map *m, const char *addr,
           const char *port)
{
  size_t n = 0;
  bool v6 = addr && strchr (addr, ':');

  while (m->disks[n])
    n++;
  if (!(m->uris = calloc (n + 1, sizeof *m->uris)))
    return -1;
  for (size_t i = 0; i < n; i++) {
    int r = o->socket
      ? asprintf (&m->uris[i], "nbd+unix:///%s?socket=%s", m->disks[i],
                  o->socket)
      : asprintf (&m->uris[i], "%s://%s%s%s:%s/%s", o->tls ? "nbds" : "nbd",
                  v6 ? "[" : "", addr, v6 ? "]" : "", port, m->disks[i]);
    if (r < 0) {
      m->uris[i] = NULL;
      vb_set_error_errno (ENOMEM, "map");
      return -1;
    }
  }
  return 0;
}

/* QEMU (group libvirt-qemu) may read the point as a disk; nobody else. */
static void
share_socket (const char *sock)
{
  struct group *g = getgrnam ("libvirt-qemu");

  if (g && chown (sock, -1, g->gr_gid) == 0)
    chmod (sock, 0660);
}

/* The pid nbdkit wrote, which may be caught half-written. */
static pid_t
read_pid (const char *pidf)
{
  struct timespec ts = { 0, 10 * 1000000 };

  for (int tries = 0; tries < 100; tries++) {
    CLEANUP_FREE char *text = vb_read_file (pidf, NULL);
    long pid = text ? strtol (text, NULL, 10) : 0;

    if (pid > 0 && text[strlen (text) - 1] == '\n')
      return pid;
    nanosleep (&ts, NULL);
  }
  vb_set_error ("%s: no pid of the NBD server in it", pidf);
  return -1;
}

/* nbdkit -f ties itself to its parent (PR_SET_PDEATHSIG), so its parent
 * is a keeper of its own, in a session of its own, that lives exactly as
 * long as nbdkit: no signal meant for us reaches either.  The keeper says
 * on READY whether the pid file came (0) or nbdkit ended (1).  Only
 * async-signal-safe calls after fork. */
static void
keeper (char *const argv[], const char *log, const char *pidf, int ready)
{
  struct timespec ts = { 0, 10 * 1000000 };
  int status;
  char ok = '1';
  pid_t gc;

  setsid ();
  for (int fd = 3; fd < 4096; fd++)   /* libvirt's socket, say */
    if (fd != ready)
      close (fd);
  if ((gc = fork ()) == 0) {
    int devnull = open ("/dev/null", O_RDWR);
    int lfd = open (log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    close (ready);
    dup2 (devnull, 0), dup2 (devnull, 1), dup2 (lfd, 2);
    execvp (argv[0], argv);
    _exit (127);
  }
  for (int w = 0; gc > 0 && w < START_TIMEOUT_MS; w += 10) {
    if (access (pidf, F_OK) == 0) {
      ok = '0';
      break;
    }
    if (waitpid (gc, &status, WNOHANG) == gc)
      _exit (1);
    nanosleep (&ts, NULL);
  }
  if (write (ready, &ok, 1) < 0 || ok != '0')
    _exit (1);
  close (ready);
  while (waitpid (gc, &status, 0) < 0 && errno == EINTR)
    ;
  _exit (0);
}

static int
spawn_detached (struct vb_map *m, char *const argv[], const char *log,
                const char *pidf)
{
  int p[2];
  char ok = '1';
  ssize_t n;

  if (pipe2 (p, O_CLOEXEC) < 0)
    return vb_set_error_errno (errno, "pipe"), -1;
  if ((m->keeper = fork ()) < 0) {
    close (p[0]), close (p[1]);
    return vb_set_error_errno (errno, "fork nbdkit"), -1;
  }
  if (m->keeper == 0)
    keeper (argv, log, pidf, p[1]);
  close (p[1]);
  while ((n = read (p[0], &ok, 1)) < 0 && errno == EINTR)
    ;
  close (p[0]);
  if (n == 1 && ok == '0')
    return 0;
  waitpid (m->keeper, NULL, 0);
  m->keeper = 0;
  char line[512];
  vb_proc_log_line (log, line, sizeof line);
  vb_set_error ("the NBD server did not start: %s", *line ? line
                : "nbdkit exited");
  return -1;
}

static int
start_server (const struct vb_map_opts *o, struct vb_map *m, char **argv,
              const char *log)
{
  CLEANUP_FREE char *pidf = vb_path_join (m->rundir, "nbdkit.pid");

  if (!o->detached) {
    m->pid = vb_proc_spawn (argv, log);
    return m->pid > 0 ? wait_ready (m) : -1;
  }
  m->detached = true;
  if (!pidf || spawn_detached (m, argv, log, pidf) < 0)
    return -1;
  m->pid = read_pid (pidf);
  return m->pid > 0 ? 0 : -1;
}

static int
spawn (const struct vb_map_opts *o, struct vb_map *m, const char *addr,
       const char *port)
{
  struct argv a = { .n = 0 };
  CLEANUP_FREE char *log = vb_path_join (m->rundir, "nbdkit.log");
  mode_t old;
  int r = -1;

  if (log && build_argv (o, m, &a, addr, port) == 0) {
    old = umask (0177);        /* the socket is born 0600 */
    r = start_server (o, m, a.v, log);
    umask (old);
  }
  free_argv (&a);
  if (r == 0 && o->socket)
    share_socket (o->socket);
  if (r == 0 && (m->logfd = open (log, O_RDONLY | O_CLOEXEC)) < 0)
    m->logfd = -1;
  return r;
}

/* Remove what a map killed with -9 left: its nbdkit went with it
 * (PR_SET_PDEATHSIG), its directory stays.  A directory without a pid
 * file may be a map still starting: only one an hour old goes. */
static void
remove_dir_files (const char *dir)
{
  static const char *const names[] = { "nbdkit.pid", "nbdkit.log", NULL };

  for (const char *const *n = names; *n; n++) {
    CLEANUP_FREE char *p = vb_path_join (dir, *n);
    if (p)
      unlink (p);
  }
  rmdir (dir);
}

/* Is PID a running nbdkit?  Not when it is gone, a zombie nobody reaped
 * yet, or the pid now belongs to another program. */
static bool
nbdkit_alive (int pid)
{
  char path[64], buf[256];
  FILE *fp;
  char *close_paren;
  bool alive = false;

  snprintf (path, sizeof path, "/proc/%d/stat", pid);
  if (!(fp = fopen (path, "re")))
    return false;
  if (fgets (buf, sizeof buf, fp) && (close_paren = strrchr (buf, ')')))
    alive = strstr (buf, "(nbdkit)") && close_paren[1] == ' ' &&
            close_paren[2] != 'Z';
  fclose (fp);
  return alive;
}

static bool
map_dir_stale (const char *dir)
{
  CLEANUP_FREE char *pidf = vb_path_join (dir, "nbdkit.pid");
  struct stat st;
  pid_t pid = vb_proc_pid_file (pidf);

  if (pid > 0)
    return !nbdkit_alive (pid);
  return stat (dir, &st) == 0 && time (NULL) - st.st_mtime > 3600;
}

static void
reap_stale (void)
{
  DIR *d = opendir ("/var/tmp");
  struct dirent *e;

  if (!d)
    return;
  while ((e = readdir (d)) != NULL) {
    CLEANUP_FREE char *path = NULL;
    if (strncmp (e->d_name, "virtback-map.", 13) || strlen (e->d_name) != 19 ||
        !(path = vb_path_join ("/var/tmp", e->d_name)))
      continue;
    if (map_dir_stale (path))
      remove_dir_files (path);
  }
  closedir (d);
}

/* nbdkit serves the point read-only on the backing socket; qemu-nbd
 * serves the overlay over it where the user asked. */
static int
start_overlay (const struct vb_map_opts *o, struct vb_map *m,
               const char *addr, const char *port)
{
  struct vb_map_opts bo = *o;

  bo.socket = m->backsock;
  bo.listen = NULL;
  bo.tls = false;
  bo.writable = false;
  if (!(m->socket = strdup (m->backsock)))
    return -1;
  if (spawn (&bo, m, NULL, NULL) < 0 ||
      vb_map_overlay_serve (o, m, addr, port) < 0)
    return -1;
  if (o->socket)
    share_socket (o->socket);
  return make_uris (o, m, addr, port);
}

int
vb_map_start (const struct vb_map_opts *o, struct vb_map *m)
{
  CLEANUP_FREE char *addr = NULL, *port = NULL;

  memset (m, 0, sizeof *m);
  m->pid = -1;
  m->qpid = -1;
  m->logfd = -1;
  if ((!o->socket) == (!o->listen)) {
    vb_set_error ("give either --socket PATH or --listen ADDRESS:PORT");
    return -1;
  }
  if (o->listen && split_listen (o->listen, &addr, &port) < 0)
    return -1;
  if (check_point (o, m) < 0)
    return -1;
  if (o->overlay && vb_map_overlay_prepare (o, m) < 0)
    return -1;
  if (o->socket && access (o->socket, F_OK) == 0) {
    vb_set_error ("%s exists already: remove it, or give another --socket",
                  o->socket);
    return -1;
  }
  reap_stale ();
  if (!(m->rundir = strdup ("/var/tmp/virtback-map.XXXXXX")) ||
      !mkdtemp (m->rundir)) {
    vb_set_error_errno (errno, "cannot make a private directory in /var/tmp");
    free (m->rundir);
    m->rundir = NULL;
    return -1;
  }
  if (o->overlay)
    return start_overlay (o, m, addr, port);
  if (o->socket && !(m->socket = strdup (o->socket)))
    return -1;
  if (spawn (o, m, addr, port) < 0)
    return -1;
  return make_uris (o, m, addr, port);
}

/* Hand each whole new line of the server's log to LINE. */
static void
relay (struct vb_map *m, void (*line) (void *, const char *), void *op)
{
  char buf[4096];
  ssize_t n;

  while (m->logfd >= 0 &&
         (n = pread (m->logfd, buf, sizeof buf - 1, m->logpos)) > 0) {
    char *nl = memrchr (buf, '\n', n);
    if (!nl)
      break;
    *nl = '\0';
    m->logpos += nl - buf + 1;
    for (char *s = buf, *e; s && *s; s = e ? e + 1 : NULL) {
      if ((e = strchr (s, '\n')))
        *e = '\0';
      if (line)
        line (op, s);
    }
  }
}

/* Is the detached server of M still nbdkit with M's pid file (not a pid
 * reused since), and no zombie? */
static bool
detached_serving (const struct vb_map *m)
{
  char want[PATH_MAX + 16];

  /* Neither check sets an error: a server that just ended is an answer,
   * and the caller's error (say, why it stops the map) must survive. */
  if (!nbdkit_alive (m->pid))
    return false;
  snprintf (want, sizeof want, "-P%s/nbdkit.pid", m->rundir);
  return vb_proc_has_arg (m->pid, want);
}

static bool
serving (struct vb_map *m)
{
  if (m->pid <= 0)
    return false;
  if (!vb_map_overlay_serving (m))
    return false;
  if (m->detached ? detached_serving (m) : vb_proc_exited (m->pid) == 0)
    return true;
  m->pid = -1;
  return false;
}

int
vb_map_poll (struct vb_map *m, void (*line) (void *, const char *), void *op)
{
  relay (m, line, op);
  if (serving (m))
    return 0;
  relay (m, line, op);
  vb_set_error ("the NBD server of the backup stopped by itself");
  return -1;
}

int
vb_map_attach (const char *rundir, const char *socket, struct vb_map *m)
{
  CLEANUP_FREE char *pidf = vb_path_join (rundir, "nbdkit.pid");
  CLEANUP_FREE char *log = vb_path_join (rundir, "nbdkit.log");
  pid_t pid = vb_proc_pid_file (pidf);

  memset (m, 0, sizeof *m);
  m->detached = true;
  m->logfd = -1;
  m->pid = pid > 0 ? pid : -1;
  m->rundir = strdup (rundir);
  m->socket = strdup (socket);
  if (!m->rundir || !m->socket || !serving (m)) {
    vb_set_error ("the NBD server of %s is gone", rundir);
    vb_map_stop (m);
    return -1;
  }
  if (log && (m->logfd = open (log, O_RDONLY | O_CLOEXEC)) >= 0)
    m->logpos = lseek (m->logfd, 0, SEEK_END);
  return 0;
}

int
vb_map_run (struct vb_map *m, volatile sig_atomic_t *cancel,
            void (*line) (void *, const char *), void *op)
{
  struct timespec ts = { 0, 100 * 1000000 };

  for (;;) {
    relay (m, line, op);
    if (cancel && __atomic_load_n (cancel, __ATOMIC_RELAXED))
      return 0;
    if (!serving (m)) {
      relay (m, line, op);
      vb_set_error ("the NBD server stopped by itself (its log is above)");
      return -1;
    }
    nanosleep (&ts, NULL);
  }
}

/* SIGTERM, SIGKILL after GRACE_MS: a server that is not our child. */
static void
stop_detached (struct vb_map *m, int grace_ms)
{
  struct timespec ts = { 0, 10 * 1000000 };

  if (!serving (m))
    return;
  kill (m->pid, SIGTERM);
  for (int waited = 0; serving (m) && waited < 2 * grace_ms; waited += 10) {
    if (waited == grace_ms)
      kill (m->pid, SIGKILL);
    nanosleep (&ts, NULL);
  }
}

void
vb_map_stop (struct vb_map *m)
{
  vb_map_overlay_stop (m);
  if (m->detached)
    stop_detached (m, 5000);
  if (m->detached && m->keeper > 0)   /* ours to reap if we started it */
    waitpid (m->keeper, NULL, 0);
  else
    vb_proc_stop (m->pid, 5000);
  m->pid = -1;
  if (m->logfd >= 0)
    close (m->logfd);
  if (m->socket)
    unlink (m->socket);
  if (m->rundir) {
    CLEANUP_FREE char *pidf = vb_path_join (m->rundir, "nbdkit.pid");
    CLEANUP_FREE char *log = vb_path_join (m->rundir, "nbdkit.log");
    if (pidf)
      unlink (pidf);
    if (log)
      unlink (log);
    rmdir (m->rundir);
  }
  free (m->rundir);
  free (m->socket);
  vb_strv_free (m->uris);
  vb_strv_free (m->disks);
  memset (m, 0, sizeof *m);
  m->pid = -1;
  m->logfd = -1;
}
