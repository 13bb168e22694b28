/* SPDX-License-Identifier: GPL-3.0-or-later */
/* checksum.c: imageio's block hash (internal.h).  The image is cut into
 * blocks of BLOCK bytes (the last may be shorter); each block's digest is
 * BLAKE2b with a 32-byte output (libsodium's crypto_generichash sets the
 * output length as BLAKE2b defines it, which is not BLAKE2b-512 cut
 * short); the checksum is the 32-byte BLAKE2b of the digests in order.
 * A block the backend reports as zero is not read: its digest is the
 * digest of that many zeros, computed once. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "serve/internal.h"

#define DIGEST 32

struct zscan {
  uint64_t end;                /* how far the zero extents go unbroken */
  bool broken;
};

static int
zero_cb (void *op, uint64_t off, uint64_t len, unsigned flags)
{
  struct zscan *z = op;

  if (!z->broken && (flags & VB_EXT_F_ZERO) && off == z->end)
    z->end = off + len;
  else
    z->broken = true;
  return 0;
}

static int
block_digest (struct vb_backend *b, char *buf, uint64_t off, size_t len,
              const unsigned char *zero_digest, unsigned char *out)
{
  struct zscan z = { .end = off };

  if (b->ops->extents (b, false, off, len, zero_cb, &z) < 0)
    return -1;
  if (z.end >= off + len && zero_digest) {
    memcpy (out, zero_digest, DIGEST);
    return 0;
  }
  if (b->ops->pread (b, buf, len, off) < 0)
    return -1;
  crypto_generichash (out, DIGEST, (unsigned char *) buf, len, NULL, 0);
  return 0;
}

int
vb_srv_checksum (struct vb_backend *b, uint64_t size, uint64_t block,
                 char hex[65])
{
  CLEANUP_FREE char *buf = calloc (1, block);
  unsigned char zd[DIGEST], d[DIGEST], sum[DIGEST];
  crypto_generichash_state outer;

  if (!buf)
    return vb_set_error_errno (ENOMEM, "checksum"), -1;
  if (sodium_init () < 0) {
    vb_set_error ("libsodium does not initialize");
    return -1;
  }
  crypto_generichash (zd, DIGEST, (unsigned char *) buf, block, NULL, 0);
  crypto_generichash_init (&outer, NULL, 0, DIGEST);
  for (uint64_t off = 0; off < size; off += block) {
    size_t len = size - off < block ? (size_t) (size - off) : (size_t) block;

    if (block_digest (b, buf, off, len, len == block ? zd : NULL, d) < 0)
      return -1;
    crypto_generichash_update (&outer, d, DIGEST);
  }
  crypto_generichash_final (&outer, sum, DIGEST);
  sodium_bin2hex (hex, 65, sum, DIGEST);
  return 0;
}
