/* SPDX-License-Identifier: GPL-3.0-or-later */
/* clock.h: the one monotonic clock, for elapsed times (progress, rates,
 * timeouts); never a wall-clock date. */
#ifndef VB_CLOCK_H
#define VB_CLOCK_H

/* Seconds on CLOCK_MONOTONIC. */
double vb_mono (void);

struct timespec;
/* MS milliseconds from now on CLOCK_REALTIME, the clock of a default
 * pthread_cond_timedwait: the one use of the wall clock, as a wait's end. */
void vb_cond_deadline (struct timespec *ts, long ms);

#endif
