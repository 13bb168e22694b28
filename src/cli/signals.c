/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The one place that installs signal handlers: the units below the CLI
 * only poll the flag they are handed, so that a library user (an nbdkit
 * plugin, say) keeps its own handlers. */
#include <signal.h>
#include <stddef.h>

#include "cli/cli.h"

static volatile sig_atomic_t stop;

static void
on_signal (int sig)
{
  (void) sig;
  /* Atomic: threads poll it (the NBD connect, the copy, the restore's
   * readers) besides the main loop; a lock-free store is safe here. */
  __atomic_store_n (&stop, 1, __ATOMIC_RELAXED);
}

volatile sig_atomic_t *
vb_cli_stop_on_signals (void)
{
  /* SIGHUP comes with a dropped ssh session, SIGQUIT would dump core:
   * both end a run as SIGINT and SIGTERM do, through its cleanup. */
  static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
  struct sigaction sa = { .sa_handler = on_signal };

  sigemptyset (&sa.sa_mask);
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    sigaction (sigs[i], &sa, NULL);
  signal (SIGPIPE, SIG_IGN);
  return &stop;
}
