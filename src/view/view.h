/* SPDX-License-Identifier: GPL-3.0-or-later */
/* view.h: a disk exactly as it was at one backup point, for random access.
 *
 * Contract: a view stands on an ordered list of data files of one disk,
 * oldest first: a full or copy file, then every file that applies on top
 * of it up to the point (as vb_chain_select orders them).  For every byte
 * the newest file that covers it wins; zero frames read as zeros; a range
 * no file covers is a hole and reads as zeros too.  Each file's virtual
 * size cuts off what older files hold beyond it, so a disk that shrank and
 * grew again reads zeros there, as the real disk did.  The view's size is
 * the last file's virtual size.
 *
 * Opening indexes every file (vb_index_build: frame headers only), so a
 * damaged file in the list fails the open, naming it; files after the
 * point are never opened.  Reads decompress whole pieces into a cache
 * bounded by CACHE_BYTES (0: VB_VIEW_DEFAULT_CACHE); a piece larger than
 * the bound is decompressed for the one read and dropped.  A read that
 * meets a bad checksum, a short file or an I/O error fails, naming the
 * file and offset; it never returns wrong bytes.
 *
 * Threads: after vb_view_open* returns, any number of threads may call
 * vb_view_pread and vb_view_extents on one view at once.
 * Files are read through read handles of a target (target/target.h),
 * opened once each.
 * Ownership: the view owns its read handles, indexes and cache, not the
 * target, which must outlive it.  Never prints.
 */
#ifndef VB_VIEW_H
#define VB_VIEW_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define VB_VIEW_DEFAULT_CACHE (256u << 20)

struct vb_view;
struct vb_chain_file;
struct vb_target;

enum vb_view_kind { VB_VIEW_HOLE, VB_VIEW_ZERO, VB_VIEW_DATA };

struct vb_view_extent {
  uint64_t off, len;
  enum vb_view_kind kind;
};

/* Files NAMES[0..N-1] of T, oldest first. */
struct vb_view *vb_view_open_names (struct vb_target *t, char *const *names,
                                    size_t n, size_t cache_bytes);
/* FILES as vb_chain_select or vb_chain_sequence return them; a raw image
 * among them (F->raw) reads as its data extents, its virtual size the one
 * its backup recorded. */
struct vb_view *vb_view_open_files (struct vb_target *t,
                                    struct vb_chain_file *const *files,
                                    size_t cache_bytes);
void vb_view_close (struct vb_view *v);

uint64_t vb_view_size (const struct vb_view *v);
/* Bytes [OFF, OFF+LEN) into BUF; the range must lie inside the view.
 * 0, or -1 with an error. */
int vb_view_pread (struct vb_view *v, void *buf, size_t len, uint64_t off);
/* The extents from OFF up to OFF+LEN (clipped to it), adjacent ones of one
 * kind merged, at most MAX of them into OUT.  Returns how many (0 only
 * when OFF is at or past the end); the caller asks again from the end of
 * the last one for more. */
size_t vb_view_extents (const struct vb_view *v, uint64_t off, uint64_t len,
                        struct vb_view_extent *out, size_t max);
/* The disk bytes of the point held in data (as restore writes them). */
uint64_t vb_view_data_bytes (const struct vb_view *v);
/* The bytes of the point that file I (in the order given at open) holds:
 * 0 when later files cover all it has. */
uint64_t vb_view_file_used (const struct vb_view *v, size_t i);

#endif
