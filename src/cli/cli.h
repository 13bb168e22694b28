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

/* The options download and upload share (cmd_download.c): --workers,
 * --cafile, --insecure and -n, as getopt_long entries and codes. */
#include <stdbool.h>
enum { VB_CLI_OPT_WORKERS = 0x1000, VB_CLI_OPT_CAFILE, VB_CLI_OPT_INSECURE };
#define VB_CLI_CLIENT_LONGOPTS \
  { "workers", required_argument, NULL, VB_CLI_OPT_WORKERS }, \
  { "cafile", required_argument, NULL, VB_CLI_OPT_CAFILE }, \
  { "insecure", no_argument, NULL, VB_CLI_OPT_INSECURE }, \
  { "noprogress", no_argument, NULL, 'n' }
struct vb_client_opts;
/* C (a getopt_long result, ARG its optarg) into O or *QUIET: 1 it was one
 * of those, 0 it was not, -1 a --workers out of 1-VB_CLIENT_MAX_WORKERS. */
int vb_cli_client_opt (int c, const char *arg, struct vb_client_opts *o,
                       bool *quiet);
/* The exit code of a parse that returned P, 1 (--help shown) or -1 (after
 * a one-line usage error naming ARGS, the operands of CMD). */
int vb_cli_client_usage (const char *cmd, const char *args, int p);
/* After getopt_long: -1 unless two operands follow the options of ARGC
 * arguments and not both --cafile and --insecure are given; else 0, O
 * armed for the transfer: signals stop it, and unless QUIET a progress
 * line goes to stderr (a terminal only). */
int vb_cli_client_ready (int argc, struct vb_client_opts *o, bool quiet);
/* The exit code of CMD's transfer that returned R (0 or -1), after its
 * error on a line of its own. */
int vb_cli_client_end (const char *cmd, const struct vb_client_opts *o,
                       int r);
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
