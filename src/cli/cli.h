/* SPDX-License-Identifier: GPL-3.0-or-later */
/* cli.h: the subcommands.  Each parses its own options, calls the units
 * below it, and is the only place that prints an error and picks the exit
 * code: 0 success, 1 failure, 2 usage error. */
#ifndef VB_CLI_H
#define VB_CLI_H

#define VB_EXIT_OK 0
#define VB_EXIT_FAIL 1
#define VB_EXIT_USAGE 2

int cmd_backup (int argc, char **argv);
int cmd_restore (int argc, char **argv);
int cmd_dump (int argc, char **argv);
int cmd_verify (int argc, char **argv);
int cmd_map (int argc, char **argv);
int cmd_mount (int argc, char **argv);
int cmd_umount (int argc, char **argv);
int cmd_serve (int argc, char **argv);
int cmd_run (int argc, char **argv);
int cmd_prune (int argc, char **argv);
int cmd_job (int argc, char **argv);
int cmd_download (int argc, char **argv);
int cmd_upload (int argc, char **argv);

/* The clients' progress line on stderr (a vb_progress_cb), and --workers. */
#include <stdint.h>
void vb_cli_progress (void *op, uint64_t done, uint64_t total, double secs);
int vb_cli_parse_workers (const char *s, unsigned *out);
int cmd_replicate (int argc, char **argv);
int cmd_replica (int argc, char **argv);
int cmd_failover (int argc, char **argv);

/* Make SIGINT, SIGTERM, SIGHUP and SIGQUIT set the returned flag (and
 * ignore SIGPIPE): the run polls it and ends through its cleanup. */
#include <signal.h>
volatile sig_atomic_t *vb_cli_stop_on_signals (void);

/* Print "virtback <cmd>: <msg>" for the current vb_get_error() to stderr. */
void vb_cli_error (const char *cmd);
/* Print a formatted one-line error for CMD. */
void vb_cli_errorf (const char *cmd, const char *fmt, ...)
  __attribute__((format (printf, 2, 3)));

#endif
