/* SPDX-License-Identifier: GPL-3.0-or-later */
/* chains.h: the chains of one domain under OUTPUT/DOMAIN, and which of
 * them retention removes.
 *
 * Layout: OUTPUT/DOMAIN/ holds one backup directory per chain (what
 * `virtback backup -o` takes), named by the UTC time the chain started,
 * 20261201T213000Z.  The newest name is the current chain: runs write into
 * it or into a new one beside it, never into an older one.  The names sort
 * as the times do, and a chain's age comes from its name, not from file
 * times.  Anything else in the directory is left alone.
 *
 * Contract: vb_chains_lock() takes an exclusive flock on the domain
 * directory itself (no lock file to leave behind); `virtback run` holds it
 * for the whole of a domain's backup and prune, `virtback prune` while it
 * prunes, so neither ever removes what the other is writing.  Removal
 * renames a chain to .prune-NAME first (a half-removed chain never reads as
 * a chain) and then deletes it; the next prune finishes what an
 * interrupted one left.  vb_chains_to_prune() never names the current
 * chain.  Prune removes nothing while the domain's own backup lock (the
 * target's per-domain lock, by the uuid in a chain's vmconfig) is held:
 * a `virtback backup` started by hand may be writing into any of them.
 * Errors: -1/NULL with vb_set_error().  Never prints.
 */
#ifndef VB_RUN_CHAINS_H
#define VB_RUN_CHAINS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define VB_CHAIN_NAME_LEN 17   /* 20261201T213000Z and the NUL */

/* The chain name of T into BUF (at least VB_CHAIN_NAME_LEN bytes). */
void vb_chain_name (time_t t, char *buf);
/* 0 and *T if NAME is a chain name, else -1 (no error set). */
int vb_chain_time (const char *name, time_t *t);

/* The chain names in DOMDIR, oldest first (a missing DIR: none). */
char **vb_chains_list (const char *domdir);
/* The chains beyond the KEEP newest, oldest first; never the last of
 * CHAINS (the current one).  KEEP 0 keeps all.  An empty vector when
 * nothing goes. */
char **vb_chains_to_prune (char *const *chains, unsigned keep);

/* Lock DOMDIR (made, mode 0700, with its parents when MKDIR); the fd to
 * hand to vb_chains_unlock, or -1 (another run or prune holds it). */
int vb_chains_lock (const char *domdir, bool mkdir);
void vb_chains_unlock (int fd);

/* 1 if a `virtback backup` of the domain whose chains are in DOMDIR holds
 * its lock now, 0 if not (or nothing tells the domain), -1 on error. */
int vb_chains_backup_running (const char *domdir, char *const *chains);
/* Remove chain NAME of DOMDIR (through .prune-NAME). */
int vb_chains_remove (const char *domdir, const char *name);
/* Prune DOMDIR (locked by the caller) to KEEP chains: *PRUNED receives
 * the names removed, or with DRY_RUN those that would be.  Leftovers of an
 * interrupted prune are finished first (not with DRY_RUN). */
int vb_chains_prune (const char *domdir, unsigned keep, bool dry_run,
                     char ***pruned);

#endif
