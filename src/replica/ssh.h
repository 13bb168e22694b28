/* SPDX-License-Identifier: GPL-3.0-or-later */
/* ssh.h (private to src/replica): run `ssh HOST virtback replica receive
 * DIR` with pipes for its stdin and stdout; its stderr goes to a log file
 * whose first line explains a failure. */
#ifndef VB_REPLICA_SSH_H
#define VB_REPLICA_SSH_H

#include <stdbool.h>
#include <sys/types.h>

struct vb_ssh {
  pid_t pid;
  int to, from;                /* its stdin, its stdout */
  char *log;
};

/* NULL-terminated argv (free with vb_cleanup_strv); CIPHERS adds
 * virtback's cipher preference. */
char **vb_ssh_argv (const char *rsh, const char *remote, const char *to,
                    bool ciphers);
/* Does ssh's configuration (ssh_config, RSH's -F, -c or -o) choose the
 * ciphers for TO?  Then virtback's preference stays out of the way.  Asks
 * `ssh -G` (no connection) when RSH runs ssh; false when it cannot tell. */
bool vb_ssh_config_ciphers (const char *rsh, const char *remote,
                            const char *to);
int vb_ssh_start (struct vb_ssh *s, char *const argv[], const char *log);
int vb_ssh_end (struct vb_ssh *s);
void vb_ssh_explain (struct vb_ssh *s, int rc);
void vb_ssh_free (struct vb_ssh *s);

#endif
