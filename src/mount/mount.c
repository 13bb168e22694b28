/* SPDX-License-Identifier: GPL-3.0-or-later */
/* mount.c: virtback mount's processes: the command, the background
 * process that keeps the map and the appliance alive, and umount. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/proc.h"
#include "common/fsutil.h"
#include "map/map.h"
#include "mount/internal.h"
#include "mount/mount.h"

#define STOP_TIMEOUT_MS 120000

static void
nap (int ms)
{
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

  nanosleep (&ts, NULL);
}

/* PATH made absolute; a last component that cannot be resolved (a FUSE
 * mount whose server died) is kept as given. */
static char *
abs_path (const char *path)
{
  CLEANUP_FREE char *d = strdup (path), *b = strdup (path);
  char *r = realpath (path, NULL), dir[PATH_MAX];

  if (r || !d || !b)
    return r;
  if (!realpath (dirname (d), dir))
    return NULL;
  return vb_path_join (dir, basename (b));
}

static int
rm_entry (const char *path, const struct stat *st, int flag, struct FTW *f)
{
  return remove (path) < 0 && errno != ENOENT ? -1 : 0;
}

/* RUNDIR, and the appliance's socket directory it names if the process
 * was killed before libguestfs removed that. */
static void
remove_rundir (const char *rundir)
{
  CLEANUP_FREE char *f = vb_path_join (rundir, "sockdir");
  CLEANUP_FREE char *sockdir = f ? vb_read_file (f, NULL) : NULL;

  if (sockdir && !strncmp (sockdir, "/tmp/libguestfs", 15) &&
      !strchr (sockdir + 15, '/'))
    nftw (sockdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
  nftw (rundir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* The run directory whose "mountpoint" file names MP, or NULL. */
static char *
find_rundir (const char *mp)
{
  DIR *d = opendir (VB_MOUNT_RUNDIR);
  struct dirent *e;
  char *found = NULL;

  while (d && !found && (e = readdir (d))) {
    CLEANUP_FREE char *dir = NULL, *file = NULL, *text = NULL;
    if (e->d_name[0] == '.' ||
        !(dir = vb_path_join (VB_MOUNT_RUNDIR, e->d_name)) ||
        !(file = vb_path_join (dir, "mountpoint")) ||
        !(text = vb_read_file (file, NULL)))
      continue;
    if (!strcmp (text, mp))
      found = STEAL (dir);
  }
  if (d)
    closedir (d);
  return found;
}

/* Wait until nothing holds the lock of RUNDIR (the background process
 * and its children are gone); 0, or -1 after TIMEOUT_MS. */
static int
wait_unlocked (int lockfd, int timeout_ms)
{
  for (int waited = 0; waited < timeout_ms; waited += 50) {
    if (flock (lockfd, LOCK_EX | LOCK_NB) == 0)
      return 0;
    nap (50);
  }
  return -1;
}

/* How many processes name RUNDIR on their command line (nbdkit by its
 * socket, the appliance's qemu by its overlays); SIG (0: none) to each. */
static int
leftovers (const char *rundir, int sig)
{
  return vb_proc_signal_matching (rundir, 0, sig);
}

/* ---- the background process ---- */

struct bg {
  const struct vb_mount_opts *o;
  const char *mp;
  const char *rundir;
  int fd;                      /* the reports to the command; -1 once OK */
  bool ready;                  /* it said OK: the cleanup is ours */
  int serving;                 /* atomic: SIGTERM now means unmount */
  int cancelled;               /* atomic: SIGTERM came before that */
};

static bool
cancelled (struct bg *b)
{
  if (!__atomic_load_n (&b->cancelled, __ATOMIC_SEQ_CST))
    return false;
  vb_set_error_code (VB_ERR_CANCELLED, 0, "cancelled");
  return true;
}

static void
say_fd (void *op, char kind, const char *text)
{
  struct bg *b = op;
  CLEANUP_FREE char *line = NULL;
  int n = asprintf (&line, "%c %s\n", kind, text);

  if (n > 0 && b->fd >= 0 && vb_write_all (b->fd, line, n) < 0)
    b->fd = -1;
  else if (n < 0)
    line = NULL;
}

/* SIGTERM reaches on_term through this pipe: blocking the signal for
 * sigwait() would block it in nbdkit and qemu too (exec keeps the mask). */
static int term_pipe[2] = { -1, -1 };

static void
on_sigterm (int sig)
{
  char c = 1;

  if (write (term_pipe[1], &c, 1) < 0)
    return;
}

/* SIGTERM while serving: unmount, which ends the FUSE loop and so the
 * whole process through its cleanup.  Before: kill what we started (the
 * appliance's qemu, nbdkit), so that the step under way fails at once and
 * the cleanup runs (libguestfs removes its socket directory). */
static void *
on_term (void *op)
{
  struct bg *b = op;
  char c;

  while (read (term_pipe[0], &c, 1) == 1 || errno == EINTR) {
    if (__atomic_load_n (&b->serving, __ATOMIC_SEQ_CST)) {
      if (umount2 (b->mp, 0) < 0)
        umount2 (b->mp, MNT_DETACH);
      continue;
    }
    __atomic_store_n (&b->cancelled, 1, __ATOMIC_SEQ_CST);
    leftovers (b->rundir, SIGKILL);
  }
  return NULL;
}

static void
catch_term (struct bg *b)
{
  struct sigaction sa = { .sa_handler = on_sigterm };
  pthread_t t;

  sigemptyset (&sa.sa_mask);
  if (pipe2 (term_pipe, O_CLOEXEC) < 0 ||
      pthread_create (&t, NULL, on_term, b) != 0)
    return;                    /* SIGTERM then just ends us */
  pthread_detach (t);
  sigaction (SIGTERM, &sa, NULL);
}

static void
note_sockdir (guestfs_h *g, const char *rundir)
{
  CLEANUP_FREE char *dir = vb_guest_sockdir (g);

  if (dir)
    vb_write_file_atomic (rundir, "sockdir", dir, strlen (dir), 0600);
}

static int
serve_guest (struct bg *b, struct vb_map *m)
{
  CLEANUP_FREE char *tmp = vb_path_join (b->rundir, "tmp");
  guestfs_h *g;
  int r = -1;

  if (!tmp || mkdir (tmp, 0700) < 0)
    return vb_set_error_errno (errno, "%s", b->rundir), -1;
  vb_guest_env ();
  if (cancelled (b) || !(g = vb_guest_launch (m->disks, m->socket, tmp)))
    return -1;
  note_sockdir (g, b->rundir);
  if (!cancelled (b) && vb_guest_mount_all (g, m->disks, say_fd, b) == 0 &&
      !cancelled (b) && vb_guest_expose (g, b->mp) == 0) {
    __atomic_store_n (&b->serving, 1, __ATOMIC_SEQ_CST);
    if (!cancelled (b))
      say_fd (b, 'O', "K");
    if (b->fd < 0)             /* the command is gone: nobody to serve */
      vb_set_error_code (VB_ERR_CANCELLED, 0, "the command was interrupted");
    if (b->fd < 0 || cancelled (b))
      umount2 (b->mp, MNT_DETACH);
    else {
      close (b->fd);
      b->fd = -1;
      b->ready = true;
      r = vb_guest_serve (g);
    }
  }
  vb_guest_close (g);
  return r;
}

static int
serve (struct bg *b)
{
  CLEANUP_FREE char *sock = vb_path_join (b->rundir, "map.sock");
  struct vb_map_opts mo = { .input = b->o->input, .until = b->o->until,
                            .disk = b->o->disk, .socket = sock };
  struct vb_map m;
  int r;

  if (!sock)
    return -1;
  if (vb_map_start (&mo, &m) < 0 || cancelled (b)) {
    vb_map_stop (&m);
    return -1;
  }
  r = serve_guest (b, &m);
  vb_map_stop (&m);
  return r;
}

static void
redirect_stdio (const char *rundir)
{
  CLEANUP_FREE char *log = vb_path_join (rundir, "log");
  int null = open ("/dev/null", O_RDWR);
  int lfd = log ? open (log, O_WRONLY | O_CREAT | O_APPEND, 0600) : -1;

  dup2 (null, 0);
  dup2 (null, 1);
  dup2 (lfd >= 0 ? lfd : null, 2);
  if (null > 2)
    close (null);
  if (lfd > 2)
    close (lfd);
}

static int
write_pid (const char *rundir)
{
  CLEANUP_FREE char *pid = NULL;

  if (asprintf (&pid, "%d\n", (int) getpid ()) < 0) {
    pid = NULL;
    return vb_set_error_errno (ENOMEM, "mount"), -1;
  }
  return vb_write_file_atomic (rundir, "pid", pid, strlen (pid), 0600);
}

/* Nothing of the command's (a test harness's pipe, say) may stay open in
 * a process that outlives it, but the report pipe and the lock. */
static void
close_others (int fd, int lockfd)
{
  for (int i = 3; i < 4096; i++)
    if (i != fd && i != lockfd)
      close (i);
}

static void __attribute__((noreturn))
background (const struct vb_mount_opts *o, const char *mp,
            const char *rundir, int fd, int lockfd)
{
  struct bg b = { .o = o, .mp = mp, .rundir = rundir, .fd = fd };
  int r = -1;

  setsid ();
  if (fork () != 0)
    _exit (0);                 /* the command reaps this one at once */
  /* SIGTERM goes to on_term (catch_term); the command's handlers (a
   * flag) are not ours. */
  signal (SIGQUIT, SIG_DFL);
  signal (SIGINT, SIG_IGN);
  signal (SIGHUP, SIG_IGN);
  signal (SIGPIPE, SIG_IGN);
  redirect_stdio (rundir);
  close_others (fd, lockfd);
  catch_term (&b);
  if (write_pid (rundir) == 0)
    r = serve (&b);
  if (r < 0) {
    fprintf (stderr, "virtback mount: %s\n", vb_get_error ());
    say_fd (&b, 'E', vb_get_error ());
  }
  if (b.ready) {               /* else the command cleans up */
    if (r < 0)                 /* the FUSE loop failed: a dead mount */
      umount2 (mp, MNT_DETACH);
    remove_rundir (rundir);
  }
  _exit (r < 0 ? 1 : 0);
}

/* ---- the command ---- */

/* Relay the background process's reports until "OK" (0) or its end. */
static int
read_reports (int fd, const struct vb_mount_report *r,
              volatile sig_atomic_t *cancel)
{
  CLEANUP_FCLOSE FILE *fp = fdopen (fd, "r");
  CLEANUP_FREE char *line = NULL;
  size_t cap = 0;
  ssize_t n;

  if (!fp)
    return close (fd), vb_set_error_errno (errno, "fdopen"), -1;
  vb_set_error ("the mount's background process died before the mount "
                "was ready");
  while ((n = getline (&line, &cap, fp)) >= 0 || errno == EINTR) {
    if (n < 0) {
      clearerr (fp);
      if (cancel && *cancel)
        return vb_set_error_code (VB_ERR_CANCELLED, 0, "cancelled"), -1;
      continue;
    }
    line[strcspn (line, "\n")] = '\0';
    if (!strcmp (line, "O K"))
      return 0;
    char *dir = line + 2, *sp = strchr (dir, ' ');
    if (line[0] == 'E')
      vb_set_error ("%s", dir);
    else if (line[0] == 'W' && r->warn)
      r->warn (r->op, dir);
    else if (line[0] == 'F' && sp && r->mounted) {
      *sp = '\0';
      r->mounted (r->op, dir, sp + 1);
    }
  }
  return -1;
}

static int
check_mountpoint (const char *mp)
{
  CLEANUP_FREE char *rundir = find_rundir (mp);
  struct stat st;

  if (stat (mp, &st) < 0 || !S_ISDIR (st.st_mode)) {
    vb_set_error ("%s is not a directory: give an empty directory", mp);
    return -1;
  }
  if (rundir) {
    vb_set_error ("%s is mounted already: run 'virtback umount %s' first",
                  mp, mp);
    return -1;
  }
  if (vb_dir_is_empty (mp) != 1) {
    vb_set_error ("%s is not empty: give an empty directory", mp);
    return -1;
  }
  return 0;
}

/* The run directory, and in *LOCKFD its lock, taken: the background
 * process inherits it, so that it is held as long as that process lives
 * (its children do not keep it: wait_gone finds them by name). */
static char *
make_rundir (const char *mp, int *lockfd)
{
  char *dir = vb_path_join (VB_MOUNT_RUNDIR, "XXXXXX");
  CLEANUP_FREE char *lock = NULL;

  if (!dir || vb_mkdir_p (VB_MOUNT_RUNDIR, 0700) < 0 || !mkdtemp (dir)) {
    vb_set_error_errno (errno, "cannot make a run directory in "
                        VB_MOUNT_RUNDIR);
    free (dir);
    return NULL;
  }
  if (!(lock = vb_path_join (dir, "lock")) ||
      (*lockfd = open (lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0 ||
      flock (*lockfd, LOCK_EX) < 0)
    vb_set_error_errno (errno, "%s", dir);
  else if (vb_write_file_atomic (dir, "mountpoint", mp, strlen (mp),
                                 0600) == 0)
    return dir;
  if (*lockfd >= 0)
    close (*lockfd);
  *lockfd = -1;
  remove_rundir (dir);
  free (dir);
  return NULL;
}

static pid_t
read_pid (const char *rundir)
{
  CLEANUP_FREE char *pidf = vb_path_join (rundir, "pid");

  return vb_proc_pid_file (pidf);
}

/* Wait until the background process of RUNDIR (LOCKFD unlocked) and what
 * it ran are gone, killing what takes too long; remove RUNDIR.  The
 * children end by themselves once it is gone (nbdkit with its parent,
 * qemu through libguestfs's recovery process), a moment later. */
static int
wait_gone (const char *rundir, int lockfd, pid_t pid)
{
  if (lockfd >= 0 && wait_unlocked (lockfd, STOP_TIMEOUT_MS) < 0 && pid > 0) {
    kill (pid, SIGKILL);
    wait_unlocked (lockfd, 10000);
  }
  for (int waited = 0; leftovers (rundir, 0) > 0 && waited < 20000;
       waited += 50) {
    if (waited == 10000)
      leftovers (rundir, SIGKILL);
    nap (50);
  }
  if (leftovers (rundir, 0) > 0) {     /* kept, for another umount */
    vb_set_error ("processes of the mount outlive SIGKILL: see 'pgrep -af "
                  "%s', then run virtback umount again", rundir);
    return -1;
  }
  remove_rundir (rundir);
  return 0;
}

/* After a failed start: stop what may still run, then remove it all. */
static void
abandon (const char *rundir)
{
  CLEANUP_FREE char *lock = vb_path_join (rundir, "lock");
  CLEANUP_CLOSE int fd = lock ? open (lock, O_RDONLY | O_CLOEXEC) : -1;
  pid_t pid = read_pid (rundir);

  if (pid > 0)
    kill (pid, SIGTERM);
  wait_gone (rundir, fd, pid);  /* the start's error is the one to tell */
}

int
vb_mount_start (const struct vb_mount_opts *o,
                const struct vb_mount_report *r,
                volatile sig_atomic_t *cancel)
{
  CLEANUP_FREE char *mp = realpath (o->mountpoint, NULL), *rundir = NULL;
  int p[2], lockfd = -1;
  pid_t child;

  if (!mp) {
    vb_set_error_errno (errno, "%s: give an empty directory as MOUNTPOINT",
                        o->mountpoint);
    return -1;
  }
  if (check_mountpoint (mp) < 0 || !(rundir = make_rundir (mp, &lockfd)))
    return -1;
  if (pipe2 (p, O_CLOEXEC) < 0 || (child = fork ()) < 0) {
    vb_set_error_errno (errno, "cannot start the mount's process");
    close (lockfd);
    remove_rundir (rundir);
    return -1;
  }
  if (child == 0) {
    close (p[0]);
    background (o, mp, rundir, p[1], lockfd);
  }
  close (lockfd);
  close (p[1]);
  waitpid (child, NULL, 0);
  if (read_reports (p[0], r, cancel) == 0)
    return 0;
  struct vb_error e;
  vb_error_save (&e);
  abandon (rundir);
  vb_error_restore (&e);
  return -1;
}

/* ---- umount ---- */

/* 0 unmounted, 1 not mounted (yet), -1 error. */
static int
unmount_fuse (const char *mp)
{
  if (umount2 (mp, 0) == 0)
    return 0;
  if (errno == EINVAL || errno == ENOENT)
    return 1;
  if (errno == EBUSY)
    vb_set_error ("%s is busy: close the files and leave the directories "
                  "in it, then run 'virtback umount %s' again", mp, mp);
  else
    vb_set_error_errno (errno, "unmount %s", mp);
  return -1;
}

int
vb_mount_stop (const char *mountpoint)
{
  CLEANUP_FREE char *mp = abs_path (mountpoint), *rundir = NULL;
  CLEANUP_FREE char *lock = NULL;
  CLEANUP_CLOSE int fd = -1;
  pid_t pid;

  if (!mp || !(rundir = find_rundir (mp))) {
    vb_set_error ("%s is not a mount of virtback mount", mountpoint);
    return -1;
  }
  if (!(lock = vb_path_join (rundir, "lock")))
    return -1;
  pid = read_pid (rundir);
  fd = open (lock, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || flock (fd, LOCK_EX | LOCK_NB) == 0) {
    /* Its process is gone (killed): a dead FUSE mount may be left, and
     * its children for a moment. */
    umount2 (mp, MNT_DETACH);
    return wait_gone (rundir, -1, 0);
  }
  switch (unmount_fuse (mp)) {
  case -1:
    return -1;
  case 1:                      /* still starting: SIGTERM ends that too */
    if (pid > 0)
      kill (pid, SIGTERM);
    break;
  }
  return wait_gone (rundir, fd, pid);
}
