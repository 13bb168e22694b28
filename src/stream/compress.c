/* SPDX-License-Identifier: GPL-3.0-or-later */
/* compress.c: per-piece compression frames (lz4 as the peer writes them, zstd as
 * our extension, issue #4) and bounded-memory streaming decompression.
 *
 * Byte identity with python-lz4's one-shot lz4.frame.compress() depends on
 * how liblz4 sees the input: one-shot compresses every 64 KiB block in
 * "prefix" mode (the previous block directly before it in memory).  If we
 * handed LZ4F a whole block straight from the caller's buffer, the next
 * block would be compressed against a copied dictionary ("extDict" mode),
 * which finds slightly different matches.  So we always make LZ4F buffer
 * each block internally (never give it a full block while its buffer is
 * empty): its ring buffer keeps consecutive blocks contiguous, as one-shot
 * does.  A fresh context per frame gives the same start state as python's.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <lz4frame.h>
#include <zstd.h>

#include "common/error.h"
#include "stream/stream.h"

#define LZ4_BLOCK (64 * 1024)

struct vb_lz4c {
  int level;
  LZ4F_cctx *cctx;
  LZ4F_preferences_t prefs;
  uint64_t piece_len, fed;
};

struct vb_lz4c *
vb_lz4c_new (int level)
{
  struct vb_lz4c *c = calloc (1, sizeof *c);

  if (c == NULL) {
    vb_set_error_errno (errno, "calloc");
    return NULL;
  }
  c->level = level;
  return c;
}

void
vb_lz4c_free (struct vb_lz4c *c)
{
  if (c == NULL)
    return;
  LZ4F_freeCompressionContext (c->cctx);
  free (c);
}

static ssize_t
lz4_err (const char *what, size_t code)
{
  vb_set_error ("lz4 %s: %s", what, LZ4F_getErrorName (code));
  return -1;
}

ssize_t
vb_lz4c_begin (struct vb_lz4c *c, uint64_t piece_len, void *out, size_t outcap)
{
  size_t r;

  if (piece_len > VB_STREAM_MAX_PIECE) {
    vb_set_error ("lz4: piece of %" PRIu64 " bytes exceeds the maximum",
                  piece_len);
    return -1;
  }
  LZ4F_freeCompressionContext (c->cctx);
  c->cctx = NULL;
  r = LZ4F_createCompressionContext (&c->cctx, LZ4F_VERSION);
  if (LZ4F_isError (r))
    return lz4_err ("create context", r);
  memset (&c->prefs, 0, sizeof c->prefs);
  c->prefs.frameInfo.blockSizeID = LZ4F_max64KB;
  /* As LZ4F_compressFrame: a single block needs no link. */
  c->prefs.frameInfo.blockMode =
    piece_len <= LZ4_BLOCK ? LZ4F_blockIndependent : LZ4F_blockLinked;
  c->prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
  c->prefs.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled;
  c->prefs.frameInfo.contentSize = piece_len;
  c->prefs.compressionLevel = c->level;
  c->piece_len = piece_len;
  c->fed = 0;
  r = LZ4F_compressBegin (c->cctx, out, outcap, &c->prefs);
  if (LZ4F_isError (r))
    return lz4_err ("begin", r);
  return (ssize_t) r;
}

ssize_t
vb_lz4c_update (struct vb_lz4c *c, const void *in, size_t len,
                void *out, size_t outcap)
{
  const char *p = in;
  size_t done = 0;

  if (c->cctx == NULL || len > c->piece_len - c->fed) {
    vb_set_error ("lz4: more input than the piece length given to begin");
    return -1;
  }
  while (len > 0) {
    size_t pos = c->fed % LZ4_BLOCK;
    size_t m = pos ? LZ4_BLOCK - pos : LZ4_BLOCK - 1;   /* see top comment */
    size_t r;

    if (m > len)
      m = len;
    r = LZ4F_compressUpdate (c->cctx, (char *) out + done, outcap - done,
                             p, m, NULL);
    if (LZ4F_isError (r))
      return lz4_err ("compress", r);
    done += r;
    p += m;
    len -= m;
    c->fed += m;
  }
  return (ssize_t) done;
}

ssize_t
vb_lz4c_end (struct vb_lz4c *c, void *out, size_t outcap)
{
  size_t r;

  if (c->cctx == NULL || c->fed != c->piece_len) {
    vb_set_error ("lz4: piece ended after %" PRIu64 " of %" PRIu64 " bytes",
                  c->fed, c->piece_len);
    return -1;
  }
  r = LZ4F_compressEnd (c->cctx, out, outcap, NULL);
  LZ4F_freeCompressionContext (c->cctx);
  c->cctx = NULL;
  if (LZ4F_isError (r))
    return lz4_err ("end", r);
  return (ssize_t) r;
}

size_t
vb_lz4c_bound (struct vb_lz4c *c, size_t len)
{
  LZ4F_preferences_t p;

  memset (&p, 0, sizeof p);
  p.frameInfo.blockSizeID = LZ4F_max64KB;
  p.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
  p.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled;
  p.compressionLevel = c->level;
  /* One spare block: updates are split into several LZ4F calls, each of
   * which checks its own worst case against the space left.  The header
   * (begin) fits too. */
  return LZ4F_compressBound (len, &p) + LZ4_BLOCK + LZ4F_HEADER_SIZE_MAX + 64;
}

/* ---- zstd (ours): same per-piece layout, content size and checksum on ---- */

struct vb_zstdc {
  ZSTD_CCtx *cctx;
  uint64_t piece_len, fed;
  bool open;
};

struct vb_zstdc *
vb_zstdc_new (int level)
{
  struct vb_zstdc *c = calloc (1, sizeof *c);

  if (c == NULL) {
    vb_set_error_errno (errno, "calloc");
    return NULL;
  }
  c->cctx = ZSTD_createCCtx ();
  if (c->cctx == NULL ||
      ZSTD_isError (ZSTD_CCtx_setParameter (c->cctx, ZSTD_c_compressionLevel,
                                            level)) ||
      ZSTD_isError (ZSTD_CCtx_setParameter (c->cctx, ZSTD_c_checksumFlag, 1)) ||
      ZSTD_isError (ZSTD_CCtx_setParameter (c->cctx, ZSTD_c_contentSizeFlag,
                                            1))) {
    vb_zstdc_free (c);
    vb_set_error ("zstd: cannot set up a compression context (level %d)",
                  level);
    return NULL;
  }
  return c;
}

void
vb_zstdc_free (struct vb_zstdc *c)
{
  if (c == NULL)
    return;
  ZSTD_freeCCtx (c->cctx);
  free (c);
}

ssize_t
vb_zstdc_begin (struct vb_zstdc *c, uint64_t piece_len, void *out, size_t outcap)
{
  if (piece_len > VB_STREAM_MAX_PIECE) {
    vb_set_error ("zstd: piece of %" PRIu64 " bytes exceeds the maximum",
                  piece_len);
    return -1;
  }
  ZSTD_CCtx_reset (c->cctx, ZSTD_reset_session_only);
  if (ZSTD_isError (ZSTD_CCtx_setPledgedSrcSize (c->cctx, piece_len))) {
    vb_set_error ("zstd: cannot set the piece size");
    return -1;
  }
  c->piece_len = piece_len;
  c->fed = 0;
  c->open = true;
  return 0;                     /* the header comes with the first output */
}

/* Run the compressor until the input is consumed (and, for ZSTD_e_end,
 * the frame is complete); the caller's OUTCAP must be enough. */
static ssize_t
zstd_run (struct vb_zstdc *c, const void *in, size_t len,
          void *out, size_t outcap, ZSTD_EndDirective mode)
{
  ZSTD_inBuffer ib = { in, len, 0 };
  ZSTD_outBuffer ob = { out, outcap, 0 };

  for (;;) {
    size_t r = ZSTD_compressStream2 (c->cctx, &ob, &ib, mode);

    if (ZSTD_isError (r)) {
      vb_set_error ("zstd: %s", ZSTD_getErrorName (r));
      return -1;
    }
    if (ib.pos == ib.size && (mode == ZSTD_e_continue || r == 0))
      return (ssize_t) ob.pos;
    if (ob.pos == ob.size) {
      vb_set_error ("zstd: output buffer too small");
      return -1;
    }
  }
}

ssize_t
vb_zstdc_update (struct vb_zstdc *c, const void *in, size_t len,
                 void *out, size_t outcap)
{
  if (!c->open || len > c->piece_len - c->fed) {
    vb_set_error ("zstd: more input than the piece length given to begin");
    return -1;
  }
  c->fed += len;
  return zstd_run (c, in, len, out, outcap, ZSTD_e_continue);
}

ssize_t
vb_zstdc_end (struct vb_zstdc *c, void *out, size_t outcap)
{
  if (!c->open || c->fed != c->piece_len) {
    vb_set_error ("zstd: piece ended after %" PRIu64 " of %" PRIu64 " bytes",
                  c->fed, c->piece_len);
    return -1;
  }
  c->open = false;
  return zstd_run (c, NULL, 0, out, outcap, ZSTD_e_end);
}

size_t
vb_zstdc_bound (struct vb_zstdc *c, size_t len)
{
  /* Up to one block of earlier input may still be buffered. */
  return ZSTD_compressBound (len + ZSTD_BLOCKSIZE_MAX) + 64;
}

/* ---- decompression ---- */

struct vb_decomp {
  enum vb_comp_method method;
  LZ4F_dctx *lz4;
  ZSTD_DCtx *zstd;
};

struct vb_decomp *
vb_decomp_new (enum vb_comp_method method)
{
  struct vb_decomp *d = calloc (1, sizeof *d);
  size_t r;

  if (d == NULL) {
    vb_set_error_errno (errno, "calloc");
    return NULL;
  }
  d->method = method;
  if (method == VB_COMP_LZ4) {
    r = LZ4F_createDecompressionContext (&d->lz4, LZ4F_VERSION);
    if (LZ4F_isError (r)) {
      free (d);
      lz4_err ("create context", r);
      return NULL;
    }
    return d;
  }
  d->zstd = ZSTD_createDCtx ();
  /* Pieces are at most 32 MiB: refuse windows beyond that instead of
   * letting corrupt input allocate up to the library's 128 MiB default. */
  if (d->zstd == NULL ||
      ZSTD_isError (ZSTD_DCtx_setParameter (d->zstd, ZSTD_d_windowLogMax, 25))) {
    vb_decomp_free (d);
    vb_set_error ("zstd: cannot create decompression context");
    return NULL;
  }
  return d;
}

void
vb_decomp_free (struct vb_decomp *d)
{
  if (d == NULL)
    return;
  LZ4F_freeDecompressionContext (d->lz4);
  ZSTD_freeDCtx (d->zstd);
  free (d);
}

void
vb_decomp_reset (struct vb_decomp *d)
{
  if (d->lz4)
    LZ4F_resetDecompressionContext (d->lz4);
  if (d->zstd)
    ZSTD_DCtx_reset (d->zstd, ZSTD_reset_session_only);
}

static int
run_lz4 (struct vb_decomp *d, const void *in, size_t *inlen,
         void *out, size_t *outlen)
{
  size_t r = LZ4F_decompress (d->lz4, out, outlen, in, inlen, NULL);

  if (LZ4F_isError (r)) {
    vb_set_error ("lz4: %s", LZ4F_getErrorName (r));
    return -1;
  }
  return r == 0;
}

static int
run_zstd (struct vb_decomp *d, const void *in, size_t *inlen,
          void *out, size_t *outlen)
{
  ZSTD_inBuffer ib = { in, *inlen, 0 };
  ZSTD_outBuffer ob = { out, *outlen, 0 };
  size_t r = ZSTD_decompressStream (d->zstd, &ob, &ib);

  *inlen = ib.pos;
  *outlen = ob.pos;
  if (ZSTD_isError (r)) {
    vb_set_error ("zstd: %s", ZSTD_getErrorName (r));
    return -1;
  }
  return r == 0;
}

int
vb_decomp_run (struct vb_decomp *d, const void *in, size_t *inlen,
               void *out, size_t *outlen)
{
  if (d->method == VB_COMP_LZ4)
    return run_lz4 (d, in, inlen, out, outlen);
  return run_zstd (d, in, inlen, out, outlen);
}

/* Decode exactly one frame that must fill OUT exactly. */
/* A context per thread and method, kept between pieces: making a zstd
 * context for each 256 KiB piece cost 13 % of a random-read workload
 * (bench/README.md).  Freed when the thread ends. */
static pthread_key_t ctx_key;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;

static void
free_ctxs (void *p)
{
  struct vb_decomp **v = p;

  vb_decomp_free (v[VB_COMP_LZ4]);
  vb_decomp_free (v[VB_COMP_ZSTD]);
  free (v);
}

static void
make_key (void)
{
  pthread_key_create (&ctx_key, free_ctxs);
}

static struct vb_decomp *
thread_ctx (enum vb_comp_method method)
{
  struct vb_decomp **v;

  pthread_once (&ctx_once, make_key);
  if (!(v = pthread_getspecific (ctx_key))) {
    if (!(v = calloc (2, sizeof *v)) || pthread_setspecific (ctx_key, v)) {
      free (v);
      vb_set_error_errno (ENOMEM, "decompression context");
      return NULL;
    }
  }
  if (!v[method])
    v[method] = vb_decomp_new (method);
  else
    vb_decomp_reset (v[method]);
  return v[method];
}

static int
decompress_whole (enum vb_comp_method method, const void *in, size_t inlen,
                  void *out, size_t outlen)
{
  struct vb_decomp *d = thread_ctx (method);
  size_t ipos = 0, opos = 0;
  int r = 0;

  if (d == NULL)
    return -1;
  while (r == 0) {
    size_t il = inlen - ipos, ol = outlen - opos;

    r = vb_decomp_run (d, (const char *) in + ipos, &il,
                       (char *) out + opos, &ol);
    if (r == 0 && il == 0 && ol == 0) {
      if (ipos == inlen)
        vb_set_error ("compressed frame is truncated");
      else
        vb_set_error ("frame decompresses to more than %zu bytes", outlen);
      r = -1;
    }
    ipos += il;
    opos += ol;
  }
  if (r != 1)
    vb_decomp_reset (d);          /* a failed frame leaves it mid-way */
  if (r == 1 && ipos != inlen) {
    vb_set_error ("trailing bytes after the compressed frame");
    return -1;
  }
  if (r == 1 && opos != outlen) {
    vb_set_error ("frame decompresses to %zu bytes, expected %zu",
                  opos, outlen);
    return -1;
  }
  return r == 1 ? 0 : -1;
}

int
vb_lz4_decompress_frame (const void *in, size_t inlen, void *out, size_t outlen)
{
  return decompress_whole (VB_COMP_LZ4, in, inlen, out, outlen);
}

int
vb_zstd_decompress_frame (const void *in, size_t inlen, void *out, size_t outlen)
{
  return decompress_whole (VB_COMP_ZSTD, in, inlen, out, outlen);
}
