/* SPDX-License-Identifier: GPL-3.0-or-later */
/* checksum.c: imageio's block hash (internal.h).  The image is cut into
 * blocks of BLOCK bytes (the last may be shorter); each block gets a digest
 * of ALGORITHM, and the checksum is the same algorithm's digest of the
 * block digests in order.  blake2b and blake2s use a 32-byte output, as the
 * daemon asks hashlib for; the others their fixed size.  BLAKE2b-256 is
 * libsodium's crypto_generichash (the output length is a parameter of
 * BLAKE2b, and OpenSSL 3.0 offers only BLAKE2b-512); blake2s's 32 bytes are
 * its full size, so OpenSSL's BLAKE2s256 is it.  A block the backend
 * reports as zero is not read: its digest is the digest of that many
 * zeros, computed once. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "serve/internal.h"

/* The algorithms the daemon computes, in its sorted order: the names of
 * hashlib.algorithms_available that hashlib has a constructor for. */
static const struct alg {
  const char *name, *evp;      /* evp NULL: libsodium's BLAKE2b-256 */
} algs[] = {
  { "blake2b", NULL }, { "blake2s", "BLAKE2s256" }, { "md5", "MD5" },
  { "sha1", "SHA1" }, { "sha224", "SHA224" }, { "sha256", "SHA256" },
  { "sha384", "SHA384" }, { "sha3_224", "SHA3-224" },
  { "sha3_256", "SHA3-256" }, { "sha3_384", "SHA3-384" },
  { "sha3_512", "SHA3-512" }, { "sha512", "SHA512" },
};
#define NALGS (sizeof algs / sizeof algs[0])
#define SODIUM_DIGEST 32

struct hasher {
  const EVP_MD *md;            /* NULL: BLAKE2b-256 */
  size_t len;                  /* digest bytes */
  EVP_MD_CTX *ctx;             /* the outer hash */
  crypto_generichash_state state;
};

static void
hasher_free (struct hasher *h)
{
  EVP_MD_CTX_free (h->ctx);
}
#define CLEANUP_HASHER __attribute__ ((cleanup (hasher_free)))

const char *
vb_srv_checksum_algorithm (size_t i)
{
  return i < NALGS ? algs[i].name : NULL;
}

static int
hasher_init (struct hasher *h, const char *name)
{
  const struct alg *a = NULL;

  for (size_t i = 0; i < NALGS && !a; i++)
    if (!strcmp (algs[i].name, name))
      a = &algs[i];
  if (!a) {
    vb_set_error ("Unsupported algorithm \"%.32s\": use one of "
                  "/checksum/algorithms", name);
    return -1;
  }
  if (!a->evp) {
    h->len = SODIUM_DIGEST;
    if (sodium_init () < 0) {
      vb_set_error ("libsodium does not initialize");
      return -1;
    }
    crypto_generichash_init (&h->state, NULL, 0, SODIUM_DIGEST);
    return 0;
  }
  if (!(h->md = EVP_get_digestbyname (a->evp))
      || !(h->ctx = EVP_MD_CTX_new ())
      || !EVP_DigestInit_ex (h->ctx, h->md, NULL)) {
    vb_set_error ("OpenSSL has no %s digest here", a->evp);
    return -1;
  }
  h->len = (size_t) EVP_MD_get_size (h->md);
  return 0;
}

/* One block's digest into OUT (h->len bytes). */
static int
hasher_digest (struct hasher *h, const void *p, size_t n, unsigned char *out)
{
  if (!h->md) {
    crypto_generichash (out, SODIUM_DIGEST, p, n, NULL, 0);
    return 0;
  }
  if (!EVP_Digest (p, n, out, NULL, h->md, NULL)) {
    vb_set_error ("the OpenSSL digest failed");
    return -1;
  }
  return 0;
}

static void
hasher_update (struct hasher *h, const unsigned char *d)
{
  if (h->md)
    EVP_DigestUpdate (h->ctx, d, h->len);
  else
    crypto_generichash_update (&h->state, d, h->len);
}

static void
hasher_hex (struct hasher *h, char *hex)
{
  unsigned char sum[EVP_MAX_MD_SIZE];

  if (h->md)
    EVP_DigestFinal_ex (h->ctx, sum, NULL);
  else
    crypto_generichash_final (&h->state, sum, h->len);
  sodium_bin2hex (hex, VB_SRV_HEX_MAX, sum, h->len);
}

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
block_digest (struct vb_backend *b, struct hasher *h, char *buf, uint64_t off,
              size_t len, const unsigned char *zero_digest, unsigned char *out)
{
  struct zscan z = { .end = off };

  if (b->ops->extents (b, false, off, len, zero_cb, &z) < 0)
    return -1;
  if (z.end >= off + len && zero_digest) {
    memcpy (out, zero_digest, h->len);
    return 0;
  }
  if (b->ops->pread (b, buf, len, off) < 0)
    return -1;
  return hasher_digest (h, buf, len, out);
}

int
vb_srv_checksum (struct vb_backend *b, uint64_t size, uint64_t block,
                 const char *algorithm, char hex[VB_SRV_HEX_MAX])
{
  CLEANUP_FREE char *buf = calloc (1, block);
  CLEANUP_HASHER struct hasher h = { 0 };
  unsigned char zd[EVP_MAX_MD_SIZE], d[EVP_MAX_MD_SIZE];

  if (!buf)
    return vb_set_error_errno (ENOMEM, "checksum"), -1;
  if (hasher_init (&h, algorithm) < 0
      || hasher_digest (&h, buf, block, zd) < 0)
    return -1;
  for (uint64_t off = 0; off < size; off += block) {
    size_t len = size - off < block ? (size_t) (size - off) : (size_t) block;

    if (block_digest (b, &h, buf, off, len, len == block ? zd : NULL, d) < 0)
      return -1;
    hasher_update (&h, d);
  }
  hasher_hex (&h, hex);
  return 0;
}

bool
vb_srv_checksum_known (const char *algorithm)
{
  for (size_t i = 0; i < NALGS; i++)
    if (!strcmp (algs[i].name, algorithm))
      return true;
  return false;
}
