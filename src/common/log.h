/* SPDX-License-Identifier: GPL-3.0-or-later */
/* log.h: how the units below the CLI report progress notes and warnings.
 *
 * Contract: units never write to stdout/stderr; they call vb_log().  The CLI
 * installs the sink (terminal and the run's log file).  Without a sink the
 * messages are dropped, which keeps unit tests quiet.  Thread-safe. */
#ifndef VB_LOG_H
#define VB_LOG_H

enum vb_log_level { VB_LOG_DEBUG, VB_LOG_INFO, VB_LOG_WARN };

typedef void (*vb_log_sink) (enum vb_log_level lvl, const char *msg,
                             void *opaque);

void vb_log_set_sink (vb_log_sink sink, void *opaque);
void vb_log (enum vb_log_level lvl, const char *fmt, ...)
  __attribute__((format (printf, 2, 3)));

/* Hold the log lock while drawing on the terminal outside vb_log(). */
void vb_log_lock (void);
void vb_log_unlock (void);

#define vb_info(...) vb_log (VB_LOG_INFO, __VA_ARGS__)
#define vb_warn(...) vb_log (VB_LOG_WARN, __VA_ARGS__)
#define vb_debug(...) vb_log (VB_LOG_DEBUG, __VA_ARGS__)

#endif
