/* SPDX-License-Identifier: GPL-3.0-or-later */
/* proc.h: running helper programs (qemu-img, qemu-nbd) without a shell.
 *
 * Contract: argv[0] is looked up in PATH; stdin is /dev/null.  A failure
 * becomes one error line: the program, and the first line it printed on
 * stderr.  Children never outlive us by accident: servers get
 * PR_SET_PDEATHSIG, so even kill -9 of virtback takes them down. */
#ifndef VB_PROC_H
#define VB_PROC_H

#include <stddef.h>
#include <stdbool.h>
#include <sys/types.h>

/* Run to completion and return its stdout (NUL-terminated, *LEN bytes).
 * NULL unless it exits 0. */
char *vb_proc_output (char *const argv[], size_t *len);
/* Run to completion, discarding stdout; 0 if it exits 0. */
int vb_proc_run (char *const argv[]);

/* Start a long-running server; its stderr goes to LOG (may be NULL). */
pid_t vb_proc_spawn (char *const argv[], const char *log);
/* 1 if PID has exited (reaped), 0 if it runs, -1 on error. */
int vb_proc_exited (pid_t pid);
/* SIGTERM, then SIGKILL after GRACE_MS; always reaps (at once when the
 * child exits early: no polling interval is added). */
void vb_proc_stop (pid_t pid, int grace_ms);
/* The pid a server or a background process wrote into PATH: 0 when the
 * file is missing or holds no positive number. */
pid_t vb_proc_pid_file (const char *path);
/* Is one of PID's arguments exactly ARG?  false for a process gone or
 * unreadable; sets no error (a check, not a failure). */
bool vb_proc_has_arg (pid_t pid, const char *arg);
/* How many processes (never this one) have an argument holding NEEDLE and,
 * when PARENT > 0, PARENT as their parent; SIG (0: none) to each.  For
 * what no pid of ours names: a library's child it cannot stop (libvirt's
 * ssh), the processes of a mount's run directory. */
int vb_proc_signal_matching (const char *needle, pid_t parent, int sig);
/* The first line of FILE, for error messages ("" if none). */
void vb_proc_log_line (const char *file, char *buf, size_t len);

#endif
