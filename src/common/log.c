/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "common/log.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static vb_log_sink log_sink;
static void *log_opaque;

void
vb_log_set_sink (vb_log_sink sink, void *opaque)
{
  pthread_mutex_lock (&lock);
  log_sink = sink;
  log_opaque = opaque;
  pthread_mutex_unlock (&lock);
}

void
vb_log (enum vb_log_level lvl, const char *fmt, ...)
{
  char msg[2048];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  /* Serialise so lines from parallel disk workers never interleave. */
  pthread_mutex_lock (&lock);
  if (log_sink)
    log_sink (lvl, msg, log_opaque);
  pthread_mutex_unlock (&lock);
}

void
vb_log_lock (void)
{
  pthread_mutex_lock (&lock);
}

void
vb_log_unlock (void)
{
  pthread_mutex_unlock (&lock);
}
