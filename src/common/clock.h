/* SPDX-License-Identifier: GPL-3.0-or-later */
/* clock.h: the one monotonic clock, for elapsed times (progress, rates,
 * timeouts); never a wall-clock date. */
#ifndef VB_CLOCK_H
#define VB_CLOCK_H

/* Seconds on CLOCK_MONOTONIC. */
double vb_mono (void);

#endif
