/* SPDX-License-Identifier: GPL-3.0-or-later */
/* select.h: which defined domains a job backs up.
 *
 * Contract: a job's `domains` are names or shell globs (fnmatch, no
 * flags) over every domain libvirt has defined, running or not; `exclude`
 * globs take domains out again.  vb_run_select() is pure: the domains in
 * the order the patterns name them (a glob's matches sorted by name), each
 * once, and the patterns that matched no defined domain at all (a domain
 * that is missing is reported, never silently skipped).  Names that cannot
 * be a directory of OUTPUT (empty, ".", "..", a leading '.') are refused
 * too, as unmatched.  Errors: -1/NULL with vb_set_error().  Never prints.
 */
#ifndef VB_RUN_SELECT_H
#define VB_RUN_SELECT_H

/* The names of every defined domain of URI (NULL: the default), sorted. */
char **vb_run_list_domains (const char *uri);

int vb_run_select (char *const *patterns, char *const *exclude,
                   char *const *all, char ***matched, char ***unmatched);

#endif
