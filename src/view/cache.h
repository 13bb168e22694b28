/* SPDX-License-Identifier: GPL-3.0-or-later */
/* cache.h (private to view/): decompressed pieces, shared by the threads
 * reading one view, bounded in bytes, least recently used dropped first.
 *
 * Contract: vb_pcache_get() hands out a piece's bytes pinned until
 * vb_pcache_put(); a pinned piece is never freed, so the bound holds only
 * for unpinned ones.  On a miss LOAD fills a fresh buffer outside the
 * lock while other threads that want the same piece wait for it, so a
 * piece is decompressed once however many readers need it; if LOAD fails
 * they try it themselves.  A piece larger than the bound is loaded for
 * its caller alone and freed by put. */
#ifndef VB_VIEW_CACHE_H
#define VB_VIEW_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct vb_pcache;
struct vb_pentry;

typedef int vb_pcache_load_fn (void *op, uint32_t file, uint64_t piece,
                               void *out);

struct vb_pcache *vb_pcache_new (size_t max_bytes);
void vb_pcache_free (struct vb_pcache *c);
/* The bytes of piece (FILE, PIECE) of LEN bytes, or NULL (LOAD's error). */
struct vb_pentry *vb_pcache_get (struct vb_pcache *c, uint32_t file,
                                 uint64_t piece, size_t len,
                                 vb_pcache_load_fn *load, void *op);
const void *vb_pentry_data (const struct vb_pentry *e);
void vb_pcache_put (struct vb_pcache *c, struct vb_pentry *e);

#endif
