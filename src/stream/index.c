/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The frame table of one data file: built from the reader's validated
 * walk, searched by binary search, pieces decompressed on demand. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "target/target.h"
#include "stream/index.h"

/* The budget: a frame of one piece in at most 48 bytes, so that
 * 131,072 frames fit in 8 MiB with room for the doubling. */
_Static_assert (sizeof (struct vb_index_frame) + sizeof (struct vb_index_piece)
                <= 48, "index entries grew past 48 bytes a frame");

struct build {
  struct vb_index *ix;
  size_t capf, capp;
  uint64_t disk_pos;           /* where the next piece's content starts */
};

/* V with room for entry N (V itself, or moved), NULL when out of memory
 * (V is then still valid). */
static void *
grow (void *v, size_t *cap, size_t n, size_t size)
{
  size_t c;
  void *p;

  if (n < *cap)
    return v;
  c = *cap ? *cap * 2 : 64;
  if (!(p = realloc (v, c * size))) {
    vb_set_error_errno (ENOMEM, "index of %zu entries", c);
    return NULL;
  }
  *cap = c;
  return p;
}

static int
add_piece (void *op, uint64_t file_offset, uint64_t csize, uint64_t content)
{
  struct build *b = op;
  struct vb_index *ix = b->ix;

  if (csize > UINT32_MAX) {
    vb_set_error ("offset 0x%" PRIx64 ": a compressed piece of 0x%" PRIx64
                  " bytes", file_offset, csize);
    return -1;
  }
  struct vb_index_piece *pv = grow (ix->pieces, &b->capp, ix->npieces,
                                    sizeof *pv);
  if (!pv)
    return -1;
  ix->pieces = pv;
  ix->pieces[ix->npieces++] = (struct vb_index_piece) {
    file_offset, b->disk_pos, (uint32_t) csize, (uint32_t) content };
  b->disk_pos += content;
  if (csize > ix->max_csize)
    ix->max_csize = csize;
  return 0;
}

static int
add_frame (struct build *b, struct vb_reader *r, const struct vb_frame *f)
{
  struct vb_index *ix = b->ix;
  uint64_t where = VB_INDEX_ZERO;

  if (f->kind == VB_FRAME_DATA)
    where = ix->compressed ? ix->npieces : f->file_offset + VB_FRAME_LEN;
  struct vb_index_frame *fv = grow (ix->frames, &b->capf, ix->nframes,
                                    sizeof *fv);
  if (!fv)
    return -1;
  ix->frames = fv;
  ix->frames[ix->nframes++] = (struct vb_index_frame) {
    f->start, f->length, where };
  b->disk_pos = f->start;
  if (f->kind == VB_FRAME_DATA)
    return vb_reader_pass (r, ix->compressed ? add_piece : NULL, b);
  return 0;
}

/* Give back what doubling left unused. */
static void
trim (struct vb_index *ix)
{
  void *p;

  if (ix->nframes &&
      (p = realloc (ix->frames, ix->nframes * sizeof *ix->frames)))
    ix->frames = p;
  if (ix->npieces &&
      (p = realloc (ix->pieces, ix->npieces * sizeof *ix->pieces)))
    ix->pieces = p;
}

struct vb_index *
vb_index_build (struct vb_rfile *rf, const char *name)
{
  struct vb_reader *r = vb_reader_open (rf, name);
  struct build b = { 0 };
  struct vb_frame f;
  int n = -1;

  if (!r)
    return NULL;
  if (!(b.ix = calloc (1, sizeof *b.ix))) {
    vb_set_error_errno (ENOMEM, "%s: index", name);
    goto out;
  }
  b.ix->compressed = vb_reader_compression (r, &b.ix->method);
  while ((n = vb_reader_next (r, &f)) == 1)
    if (f.kind != VB_FRAME_STOP && add_frame (&b, r, &f) < 0) {
      n = -1;
      break;
    }
  if (n == 0) {
    vb_reader_take_meta (r, &b.ix->meta);
    trim (b.ix);
  }
 out:
  vb_reader_close (r);
  if (n != 0) {
    vb_index_free (b.ix);
    return NULL;
  }
  return b.ix;
}

static int
add_raw (struct build *b, uint64_t start, uint64_t end)
{
  struct vb_index *ix = b->ix;
  struct vb_index_frame *fv = grow (ix->frames, &b->capf, ix->nframes,
                                    sizeof *fv);

  if (!fv)
    return -1;
  ix->frames = fv;
  ix->frames[ix->nframes++] = (struct vb_index_frame) {
    start, end - start, start };
  return 0;
}

/* The next data extent [*DATA, *HOLE) at or after POS, below END; 0 when
 * none is left. */
static int
next_extent (struct vb_rfile *rf, const char *name, uint64_t pos,
             uint64_t end, uint64_t *data, uint64_t *hole)
{
  int r = vb_rfile_next_data (rf, pos, data, hole);

  if (r < 0) {
    vb_prefix_error ("%s: seek at offset %" PRIu64, name, pos);
    return -1;
  }
  if (r == 0 || *data >= end)
    return 0;
  if (*hole > end)
    *hole = end;
  return 1;
}

struct vb_index *
vb_index_raw (struct vb_rfile *rf, const char *name, uint64_t size)
{
  struct build b = { 0 };
  uint64_t end, pos = 0, data, hole;
  int r = 0;

  if (!(b.ix = calloc (1, sizeof *b.ix))) {
    vb_set_error_errno (ENOMEM, "%s", name);
    return NULL;
  }
  end = rf->size < size ? rf->size : size;
  while (pos < end && (r = next_extent (rf, name, pos, end, &data, &hole)) > 0
         && (r = add_raw (&b, data, hole)) == 0)
    pos = hole;
  b.ix->meta.virtual_size = size;
  if (r < 0) {
    vb_index_free (b.ix);
    return NULL;
  }
  trim (b.ix);
  return b.ix;
}

void
vb_index_free (struct vb_index *ix)
{
  if (!ix)
    return;
  vb_meta_clear (&ix->meta);
  free (ix->frames);
  free (ix->pieces);
  free (ix);
}

size_t
vb_index_find (const struct vb_index *ix, uint64_t off)
{
  size_t lo = 0, hi = ix->nframes;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const struct vb_index_frame *f = &ix->frames[mid];
    if (f->start + f->length <= off)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

size_t
vb_index_find_piece (const struct vb_index *ix, size_t frame, uint64_t off)
{
  size_t lo = ix->frames[frame].where, hi = ix->npieces;

  /* The last piece that starts at or before OFF. */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (ix->pieces[mid].disk_offset <= off)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

int
vb_index_piece_read (const struct vb_index *ix, struct vb_rfile *rf,
                     const char *name, size_t p, void *in, void *out)
{
  const struct vb_index_piece *pc = &ix->pieces[p];
  ssize_t n = vb_rfile_pread (rf, in, pc->csize, pc->file_offset);
  int r;

  if (n < 0 || (size_t) n < pc->csize) {
    vb_set_error_errno (n < 0 ? vb_get_errno () : EIO, "%s: offset 0x%"
                        PRIx64 ": read of a compressed piece%s", name,
                        pc->file_offset + (n < 0 ? 0 : n),
                        n < 0 ? "" : " (truncated)");
    return -1;
  }
  r = ix->method == VB_COMP_ZSTD
    ? vb_zstd_decompress_frame (in, pc->csize, out, pc->length)
    : vb_lz4_decompress_frame (in, pc->csize, out, pc->length);
  if (r < 0)
    vb_prefix_error ("%s: offset 0x%" PRIx64 ": piece of disk 0x%" PRIx64
                     "+0x%" PRIx32, name, pc->file_offset, pc->disk_offset,
                     pc->length);
  return r;
}
