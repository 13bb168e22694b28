/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The view: the files' frame tables laid over each other once, at open,
 * into one sorted map of segments (which file, or zero, or hole), then
 * reads that look a byte up in the map and in its file's index. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backupset/chain.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "target/target.h"
#include "stream/index.h"
#include "view/cache.h"
#include "view/view.h"

#define NO_FILE UINT32_MAX     /* a hole */

struct seg {
  uint64_t off, len;
  uint32_t file;               /* NO_FILE: hole */
  uint32_t kind;               /* enum vb_view_kind */
};

struct vfile {
  const char *path;            /* for messages: the handle's name */
  struct vb_rfile *rf;
  struct vb_index *ix;
  uint64_t used;               /* bytes of the point read from it */
};

struct segs {
  struct seg *v;
  size_t n, cap;
};

struct vb_view {
  struct vfile *files;
  size_t nfiles;
  struct segs map;             /* covers [0, size) without gaps */
  uint64_t size, data_bytes;
  struct vb_pcache *cache;
};

/* Append, merging with the last segment when it continues it. */
static int
emit (struct segs *s, uint64_t off, uint64_t len, uint32_t file,
      uint32_t kind)
{
  struct seg *last = s->n ? &s->v[s->n - 1] : NULL;

  if (!len)
    return 0;
  if (last && last->file == file && last->kind == kind &&
      last->off + last->len == off) {
    last->len += len;
    return 0;
  }
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 256;
    struct seg *v = realloc (s->v, cap * sizeof *v);
    if (!v) {
      vb_set_error_errno (ENOMEM, "view map of %zu segments", cap);
      return -1;
    }
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n++] = (struct seg) { off, len, file, kind };
  return 0;
}

/* Copy what OLD holds of [from, to), clipped. *I walks OLD forward. */
static int
copy_old (struct segs *out, const struct segs *old, size_t *i,
          uint64_t from, uint64_t to)
{
  for (; *i < old->n; ++*i) {
    const struct seg *g = &old->v[*i];
    uint64_t a = g->off > from ? g->off : from;
    uint64_t b = g->off + g->len < to ? g->off + g->len : to;
    if (g->off >= to)
      break;
    if (a < b && emit (out, a, b - a, g->file, g->kind) < 0)
      return -1;
    if (g->off + g->len > to)
      break;                   /* the rest of it may show after TO */
  }
  return 0;
}

/* What no file covers up to TO is a hole: past the end of an older,
 * smaller disk, or in a full's gaps. */
static int
fill_to (struct segs *out, uint64_t to)
{
  uint64_t end = out->n ? out->v[out->n - 1].off + out->v[out->n - 1].len : 0;

  return end < to ? emit (out, end, to - end, NO_FILE, VB_VIEW_HOLE) : 0;
}

/* OLD with file F's frames laid over it, all cut at F's virtual size. */
static int
overlay (struct segs *out, const struct segs *old, uint32_t f,
         const struct vb_index *ix)
{
  uint64_t vsize = ix->meta.virtual_size, pos = 0;
  size_t i = 0;

  for (size_t k = 0; k < ix->nframes; k++) {
    const struct vb_index_frame *fr = &ix->frames[k];
    if (copy_old (out, old, &i, pos, fr->start) < 0 ||
        fill_to (out, fr->start) < 0 ||
        emit (out, fr->start, fr->length, f, fr->where == VB_INDEX_ZERO ?
              VB_VIEW_ZERO : VB_VIEW_DATA) < 0)
      return -1;
    pos = fr->start + fr->length;
  }
  if (copy_old (out, old, &i, pos, vsize) < 0)
    return -1;
  return fill_to (out, vsize);
}

static int
build_map (struct vb_view *v)
{
  struct segs cur = { 0 };

  for (size_t f = 0; f < v->nfiles; f++) {
    struct segs next = { 0 };
    if (overlay (&next, &cur, f, v->files[f].ix) < 0) {
      free (next.v);
      free (cur.v);
      return -1;
    }
    free (cur.v);
    cur = next;
  }
  v->map = cur;
  v->size = v->files[v->nfiles - 1].ix->meta.virtual_size;
  for (size_t i = 0; i < cur.n; i++)
    if (cur.v[i].kind == VB_VIEW_DATA) {
      v->data_bytes += cur.v[i].len;
      v->files[cur.v[i].file].used += cur.v[i].len;
    }
  return 0;
}

/* What a view is made of: a stream file, or a raw image of VSIZE. */
struct vsrc {
  const char *name;
  bool raw;
  uint64_t vsize;
};

static int
open_file (struct vb_target *t, struct vfile *vf, const struct vsrc *src)
{
  if (!(vf->rf = vb_target_open_read (t, src->name)))
    return -1;
  vf->path = vf->rf->name;
  vf->ix = src->raw ? vb_index_raw (vf->rf, vf->path, src->vsize)
                    : vb_index_build (vf->rf, vf->path);
  return vf->ix ? 0 : -1;
}

static struct vb_view *
view_open (struct vb_target *t, const struct vsrc *src, size_t n,
           size_t cache_bytes)
{
  struct vb_view *v = calloc (1, sizeof *v);

  if (!v || !n || !(v->files = calloc (n, sizeof *v->files))) {
    vb_set_error_errno (n ? ENOMEM : EINVAL, "view of %zu files", n);
    free (v);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    v->nfiles = i + 1;
    if (open_file (t, &v->files[i], &src[i]) < 0)
      goto fail;
  }
  if (!(v->cache = vb_pcache_new (cache_bytes ? cache_bytes
                                  : VB_VIEW_DEFAULT_CACHE)) ||
      build_map (v) < 0)
    goto fail;
  return v;
 fail:
  vb_view_close (v);
  return NULL;
}

struct vb_view *
vb_view_open_names (struct vb_target *t, char *const *names, size_t n,
                    size_t cache_bytes)
{
  CLEANUP_FREE struct vsrc *src = calloc (n + 1, sizeof *src);

  if (!src) {
    vb_set_error_errno (ENOMEM, "view");
    return NULL;
  }
  for (size_t i = 0; i < n; i++)
    src[i].name = names[i];
  return view_open (t, src, n, cache_bytes);
}

struct vb_view *
vb_view_open_files (struct vb_target *t, struct vb_chain_file *const *files,
                    size_t cache_bytes)
{
  size_t n = 0;
  CLEANUP_FREE struct vsrc *src = NULL;

  while (files[n])
    n++;
  if (!(src = calloc (n + 1, sizeof *src))) {
    vb_set_error_errno (ENOMEM, "view");
    return NULL;
  }
  for (size_t i = 0; i < n; i++)
    src[i] = (struct vsrc) { files[i]->name, files[i]->raw,
                             files[i]->meta.virtual_size };
  return view_open (t, src, n, cache_bytes);
}

void
vb_view_close (struct vb_view *v)
{
  if (!v)
    return;
  for (size_t i = 0; i < v->nfiles; i++) {
    vb_index_free (v->files[i].ix);
    vb_rfile_close (v->files[i].rf);
  }
  free (v->files);
  free (v->map.v);
  vb_pcache_free (v->cache);
  free (v);
}

uint64_t
vb_view_size (const struct vb_view *v)
{
  return v->size;
}

uint64_t
vb_view_data_bytes (const struct vb_view *v)
{
  return v->data_bytes;
}

uint64_t
vb_view_file_used (const struct vb_view *v, size_t i)
{
  return i < v->nfiles ? v->files[i].used : 0;
}

/* The segment holding OFF (OFF < size). */
static size_t
find_seg (const struct vb_view *v, uint64_t off)
{
  size_t lo = 0, hi = v->map.n;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (v->map.v[mid].off + v->map.v[mid].len <= off)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

size_t
vb_view_extents (const struct vb_view *v, uint64_t off, uint64_t len,
                 struct vb_view_extent *out, size_t max)
{
  uint64_t end;
  size_t n = 0;

  if (off >= v->size)
    return 0;
  end = len > v->size - off ? v->size : off + len;
  for (size_t i = find_seg (v, off); i < v->map.n && v->map.v[i].off < end;
       i++) {
    const struct seg *g = &v->map.v[i];
    uint64_t a = g->off > off ? g->off : off;
    uint64_t b = g->off + g->len < end ? g->off + g->len : end;
    if (n && out[n - 1].kind == g->kind && out[n - 1].off + out[n - 1].len == a)
      out[n - 1].len += b - a;
    else if (n == max)
      break;
    else
      out[n++] = (struct vb_view_extent) { a, b - a, g->kind };
  }
  return n;
}

struct load_ctx {
  struct vb_view *v;
};

static int
load_piece (void *op, uint32_t file, uint64_t piece, void *out)
{
  struct load_ctx *l = op;
  const struct vfile *vf = &l->v->files[file];
  CLEANUP_FREE void *in = malloc (vf->ix->max_csize ? vf->ix->max_csize : 1);

  if (!in) {
    vb_set_error_errno (ENOMEM, "%s: piece", vf->path);
    return -1;
  }
  return vb_index_piece_read (vf->ix, vf->rf, vf->path, piece, in, out);
}

static int
pread_all (const struct vfile *vf, void *buf, size_t len, uint64_t off)
{
  ssize_t n = vb_rfile_pread (vf->rf, buf, len, off);

  if (n < 0 || (size_t) n < len) {
    vb_set_error_errno (n < 0 ? vb_get_errno () : EIO, "%s: offset 0x%"
                        PRIx64 ": read%s", vf->path, off + (n < 0 ? 0 : n),
                        n < 0 ? "" : " (truncated)");
    return -1;
  }
  return 0;
}

/* Bytes [OFF, OFF+LEN) of frame K of file F, all inside that frame. */
static int
read_frame (struct vb_view *v, uint32_t f, size_t k, char *buf, size_t len,
            uint64_t off)
{
  const struct vfile *vf = &v->files[f];
  const struct vb_index *ix = vf->ix;
  const struct vb_index_frame *fr = &ix->frames[k];
  struct load_ctx l = { v };

  if (!ix->compressed)
    return pread_all (vf, buf, len, fr->where + (off - fr->start));
  for (size_t p = vb_index_find_piece (ix, k, off); len; p++) {
    const struct vb_index_piece *pc = &ix->pieces[p];
    uint64_t in = off - pc->disk_offset;
    size_t n = pc->length - in < len ? pc->length - in : len;
    struct vb_pentry *e = vb_pcache_get (v->cache, f, p, pc->length,
                                         load_piece, &l);
    if (!e)
      return -1;
    memcpy (buf, (const char *) vb_pentry_data (e) + in, n);
    vb_pcache_put (v->cache, e);
    buf += n, off += n, len -= n;
  }
  return 0;
}

/* A data segment of file F: it may span several adjacent frames. */
static int
read_data (struct vb_view *v, uint32_t f, char *buf, size_t len,
           uint64_t off)
{
  const struct vb_index *ix = v->files[f].ix;

  for (size_t k = vb_index_find (ix, off); len; k++) {
    const struct vb_index_frame *fr = &ix->frames[k];
    size_t n = fr->start + fr->length - off < len
               ? fr->start + fr->length - off : len;
    if (read_frame (v, f, k, buf, n, off) < 0)
      return -1;
    buf += n, off += n, len -= n;
  }
  return 0;
}

int
vb_view_pread (struct vb_view *v, void *buf, size_t len, uint64_t off)
{
  char *p = buf;

  if (off > v->size || len > v->size - off) {
    vb_set_error ("read of 0x%zx bytes at 0x%" PRIx64 " lies beyond the "
                  "disk's 0x%" PRIx64 " bytes", len, off, v->size);
    return -1;
  }
  for (size_t i = len ? find_seg (v, off) : 0; len; i++) {
    const struct seg *g = &v->map.v[i];
    size_t n = g->off + g->len - off < len ? g->off + g->len - off : len;
    if (g->kind != VB_VIEW_DATA)
      memset (p, 0, n);
    else if (read_data (v, g->file, p, n, off) < 0)
      return -1;
    p += n, off += n, len -= n;
  }
  return 0;
}
