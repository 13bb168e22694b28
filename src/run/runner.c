/* SPDX-License-Identifier: GPL-3.0-or-later */
/* runner.c: one child `virtback backup` per domain, PARALLEL at once. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "common/text.h"
#include "run/report.h"
#include "run/runner.h"

#define KILL_GRACE 30.0        /* seconds between SIGTERM and SIGKILL */
#define POLL_NS 50000000L

int
vb_run_decide (enum vb_run_level level, uint64_t full_interval,
               char *const *chains, time_t now, struct vb_run_plan *p)
{
  size_t n = vb_run_strv_len (chains);
  time_t started = 0;

  memset (p, 0, sizeof *p);
  if (n && vb_chain_time (chains[n - 1], &started) < 0)
    n = 0;
  switch (level) {
  case VB_RUN_INC:
  case VB_RUN_DIFF:
    if (!n) {
      vb_set_error ("no chain to continue: level %s needs one (use level "
                    "auto or full)", vb_run_level_name (level));
      return -1;
    }
    p->level = vb_run_level_name (level);
    break;
  case VB_RUN_AUTO:
    /* A clock set back makes the age negative: the chain goes on. */
    p->new_chain = !n || (full_interval &&
                          now - started >= (long long) full_interval);
    p->level = p->new_chain ? "full" : "auto";
    break;
  default:
    p->new_chain = true;
    p->level = vb_run_level_name (level);
  }
  if (p->new_chain) {
    vb_chain_name (now, p->chain);
    if (n && strcmp (p->chain, chains[n - 1]) <= 0) {
      vb_set_error ("chain %s exists already (a new chain starts at most "
                    "once a second)", chains[n - 1]);
      return -1;
    }
  }
  else
    memcpy (p->chain, chains[n - 1], VB_CHAIN_NAME_LEN);
  return 0;
}

int
vb_run_task_init (struct vb_run_task *t, const struct vb_run_job *job,
                  const char *domain)
{
  memset (t, 0, sizeof *t);
  t->job = job;
  t->out_fd = t->err_fd = t->lock_fd = -1;
  t->domain = strdup (domain);
  t->domdir = vb_path_join (job->output, domain);
  t->res.domain = strdup (domain);
  t->res.job = strdup (job->name);
  t->res.status = VB_RUN_FAILED;
  if (!t->domain || !t->domdir || !t->res.domain || !t->res.job) {
    vb_set_error ("out of memory");
    return -1;
  }
  return 0;
}

void
vb_run_task_clear (struct vb_run_task *t)
{
  free (t->domain);
  free (t->domdir);
  vb_run_result_clear (&t->res);
}

static int
plan_now (struct vb_run_task *t, time_t now)
{
  CLEANUP_STRV char **chains = vb_chains_list (t->domdir);

  return chains ? vb_run_decide (t->job->level, t->job->full_interval,
                                 chains, now, &t->plan) : -1;
}

int
vb_run_dry (struct vb_run_task *t, time_t now, char ***prune)
{
  CLEANUP_STRV char **chains = vb_chains_list (t->domdir);

  *prune = NULL;
  if (!chains || vb_run_decide (t->job->level, t->job->full_interval,
                                chains, now, &t->plan) < 0)
    return -1;
  if (t->plan.new_chain && vb_run_strv_push (&chains, t->plan.chain) < 0)
    return -1;
  *prune = vb_chains_to_prune (chains, t->job->keep_chains);
  return *prune ? 0 : -1;
}

static void
set_error (struct vb_run_result *r, const char *msg)
{
  if (!r->error)
    r->error = strdup (msg);
}

/* The child's argv: backup into the chain directory as -l LEVEL would. */
static char **
child_argv (const struct vb_run_task *t, const char *chaindir)
{
  const struct vb_run_job *j = t->job;
  char **v = NULL;
  const char *base[] = { "virtback", "backup", "-d", t->domain, "-o", chaindir,
                         "-l", t->plan.level, "--json", "-n" };
  int r = 0;

  for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
    r |= vb_run_strv_push (&v, base[i]);
  if (j->uri)
    r |= vb_run_strv_push (&v, "-U") | vb_run_strv_push (&v, j->uri);
  if (j->scratchdir)
    r |= vb_run_strv_push (&v, "-S") | vb_run_strv_push (&v, j->scratchdir);
  if (j->compress)
    r |= vb_run_strv_push (&v, "--compress-method") |
      vb_run_strv_push (&v, j->compress);
  if (!j->freeze)
    r |= vb_run_strv_push (&v, "--no-freeze");
  for (size_t i = 0; j->exclude_disks && j->exclude_disks[i]; i++)
    r |= vb_run_strv_push (&v, "-x") | vb_run_strv_push (&v, j->exclude_disks[i]);
  for (size_t i = 0; j->include_disks && j->include_disks[i]; i++)
    r |= vb_run_strv_push (&v, "-i") | vb_run_strv_push (&v, j->include_disks[i]);
  if (r) {
    vb_run_strv_free (v);
    return NULL;
  }
  return v;
}

static void
exec_child (char **argv, int out, int err, pid_t parent)
{
  int null = open ("/dev/null", O_RDONLY);

  /* The backup ends through its own cleanup when the run dies. */
  prctl (PR_SET_PDEATHSIG, SIGTERM);
  if (getppid () != parent)
    _exit (127);
  if (null < 0 || dup2 (null, 0) < 0 || dup2 (out, 1) < 0 || dup2 (err, 2) < 0)
    _exit (127);
  execv ("/proc/self/exe", argv);
  dprintf (2, "virtback backup: cannot run /proc/self/exe: %s\n",
           strerror (errno));
  _exit (127);
}

static int
spawn (struct vb_run_task *t, const char *chaindir)
{
  CLEANUP_STRV char **argv = child_argv (t, chaindir);
  pid_t parent = getpid ();

  t->out_fd = memfd_create ("virtback-run-out", MFD_CLOEXEC);
  t->err_fd = memfd_create ("virtback-run-err", MFD_CLOEXEC);
  if (!argv || t->out_fd < 0 || t->err_fd < 0) {
    vb_set_error_errno (errno, "cannot start the backup");
    return -1;
  }
  t->pid = fork ();
  if (t->pid < 0) {
    vb_set_error_errno (errno, "fork");
    return -1;
  }
  if (t->pid == 0)
    exec_child (argv, t->out_fd, t->err_fd, parent);
  return 0;
}

static int
make_chain_dir (const char *path)
{
  if (mkdir (path, 0700) < 0) {
    vb_set_error_errno (errno, "cannot make the chain directory %s", path);
    return -1;
  }
  return 0;
}

/* Lock, plan, make the chain directory, fork: -1 ends the task here. */
static int
start (struct vb_run_task *t)
{
  CLEANUP_FREE char *chaindir = NULL;

  t->start = vb_mono ();
  t->started = true;
  if ((t->lock_fd = vb_chains_lock (t->domdir, true)) < 0 ||
      plan_now (t, time (NULL)) < 0 ||
      !(chaindir = vb_path_join (t->domdir, t->plan.chain)))
    return -1;
  t->res.chain = strdup (chaindir);
  if (t->plan.new_chain && make_chain_dir (chaindir) < 0) {
    t->plan.new_chain = false;   /* not ours to remove */
    return -1;
  }
  return spawn (t, chaindir);
}

static char *
read_fd (int fd)
{
  struct stat st;
  char *buf;
  ssize_t r;

  if (fstat (fd, &st) < 0 || !(buf = calloc (1, st.st_size + 1)))
    return NULL;
  r = pread (fd, buf, st.st_size, 0);
  if (r < 0)
    r = 0;
  buf[r] = '\0';
  return buf;
}

/* The child's last line on stderr, without its "virtback backup: ". */
static char *
last_line (const char *text)
{
  const char *end = text + strlen (text), *p;
  static const char prefix[] = "virtback backup: ";

  while (end > text && end[-1] == '\n')
    end--;
  for (p = end; p > text && p[-1] != '\n'; p--)
    ;
  if (end > p && !strncmp (p, prefix, strlen (prefix)) &&
      (size_t) (end - p) > strlen (prefix))
    p += strlen (prefix);
  return end > p ? strndup (p, end - p) : NULL;
}

static void
take_exit (struct vb_run_task *t, int status)
{
  CLEANUP_FREE char *out = read_fd (t->out_fd);
  CLEANUP_FREE char *err = read_fd (t->err_fd);
  CLEANUP_FREE char *line = err ? last_line (err) : NULL;
  CLEANUP_FREE char *why = NULL;

  t->child_ok = WIFEXITED (status) && WEXITSTATUS (status) == 0;
  if (t->child_ok && out && vb_run_take_summary (out, &t->res) == 0) {
    t->res.status = VB_RUN_OK;
    return;
  }
  if (t->timed_out)
    why = vb_xasprintf ("timed out after %llu s (the job's timeout)",
                        (unsigned long long) t->job->timeout);
  else if (line)
    why = STEAL (line);
  else if (WIFSIGNALED (status))
    why = vb_xasprintf ("the backup was killed by signal %d",
                        WTERMSIG (status));
  else if (WIFEXITED (status) && WEXITSTATUS (status) == 0)
    why = strdup (vb_get_error ());
  else
    why = vb_xasprintf ("the backup failed with status %d",
                        WEXITSTATUS (status));
  set_error (&t->res, why ? why : "the backup failed");
}

static void
prune_after (struct vb_run_task *t)
{
  if (!t->job->keep_chains)
    return;
  if (vb_chains_prune (t->domdir, t->job->keep_chains, false,
                       &t->res.pruned) < 0) {
    CLEANUP_FREE char *msg = vb_xasprintf ("backed up, but pruning failed: %s",
                                           vb_get_error ());
    t->res.status = VB_RUN_FAILED;
    set_error (&t->res, msg ? msg : "pruning failed");
  }
}

/* What a failed first backup of a new chain left (its log) goes with
 * it, so that the chain before stays the current one. */
static void
drop_new_chain (struct vb_run_task *t)
{
  CLEANUP_FREE char *msg = NULL;

  if (vb_chains_remove (t->domdir, t->plan.chain) == 0) {
    t->res.chain = (free (t->res.chain), NULL);
    return;
  }
  msg = vb_xasprintf ("%s; and the new chain directory could not be "
                      "removed: %s", t->res.error ? t->res.error : "failed",
                      vb_get_error ());
  if (msg) {
    free (t->res.error);
    t->res.error = STEAL (msg);
  }
}

/* The task ended (STATUS from waitpid, or -1: it never ran). */
static void
finish (struct vb_run_task *t, int status, double t0)
{
  if (status != -1)
    take_exit (t, status);
  else
    set_error (&t->res, vb_get_error ());
  if (t->res.status == VB_RUN_OK)
    prune_after (t);
  else if (t->plan.new_chain && !t->child_ok)
    drop_new_chain (t);
  t->res.seconds = vb_mono () - t->start;
  t->res.started_after = t->start - t0;
  t->res.finished = time (NULL);
  if (t->out_fd >= 0)
    close (t->out_fd);
  if (t->err_fd >= 0)
    close (t->err_fd);
  vb_chains_unlock (t->lock_fd);
  t->out_fd = t->err_fd = t->lock_fd = -1;
  t->pid = 0;
}

static void
signal_child (struct vb_run_task *t, double now, bool cancel)
{
  bool late = t->job->timeout && now - t->start > (double) t->job->timeout;

  if (!t->term_at && (cancel || late)) {
    t->timed_out = !cancel && late;
    kill (t->pid, SIGTERM);
    t->term_at = now;
  }
  else if (t->term_at && now - t->term_at > KILL_GRACE)
    kill (t->pid, SIGKILL);
}

/* Reap what ended; signal what must end.  Returns how many ended. */
static size_t
poll_children (struct vb_run_task *tasks, size_t n, bool cancel, double t0,
               vb_run_done_fn done, void *op)
{
  double now = vb_mono ();
  size_t ended = 0;
  int status;

  for (size_t i = 0; i < n; i++) {
    struct vb_run_task *t = &tasks[i];
    if (t->pid <= 0)
      continue;
    pid_t r = waitpid (t->pid, &status, WNOHANG);
    if (r == t->pid || (r < 0 && errno == ECHILD)) {
      if (r < 0)
        status = W_EXITCODE (127, 0);
      finish (t, status, t0);
      ended++;
      if (done)
        done (t, op);
    }
    else
      signal_child (t, now, cancel);
  }
  return ended;
}

static void
not_started (struct vb_run_task *t, double t0, vb_run_done_fn done, void *op)
{
  t->started = true;
  t->start = vb_mono ();
  t->res.started_after = t->start - t0;
  set_error (&t->res, "interrupted before it started");
  t->res.finished = time (NULL);
  if (done)
    done (t, op);
}

void
vb_run_tasks (struct vb_run_task *tasks, size_t n, unsigned parallel,
              volatile sig_atomic_t *cancel, vb_run_done_fn done, void *op)
{
  size_t next = 0, running = 0, ended = 0;
  const struct timespec pause = { 0, POLL_NS };
  double t0 = vb_mono ();

  while (ended < n) {
    bool stop = cancel && __atomic_load_n (cancel, __ATOMIC_RELAXED);
    while (!stop && next < n && running < parallel) {
      struct vb_run_task *t = &tasks[next++];
      if (start (t) < 0) {
        finish (t, -1, t0);
        ended++;
        if (done)
          done (t, op);
        continue;
      }
      running++;
    }
    while (stop && next < n) {
      not_started (&tasks[next++], t0, done, op);
      ended++;
    }
    size_t e = poll_children (tasks, next, stop, t0, done, op);
    ended += e;
    running -= e;
    if (ended < n && !e)
      nanosleep (&pause, NULL);
  }
}
