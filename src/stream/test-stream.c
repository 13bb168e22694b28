/* SPDX-License-Identifier: GPL-3.0-or-later */
/* test-stream.c: unit tests for the stream format.
 *
 * Golden values come from the peer's own libraries, generated once with
 * python3 and embedded here:
 *   - json.dumps(meta, indent=4) for the metadata,
 *   - json.dumps(list) for the trailer,
 *   - lz4.frame.compress(d, content_checksum=True, block_checksum=True,
 *     compression_level=L) (python3-lz4 4.0.2, liblz4 1.9.4): output length
 *     and zlib.adler32, for inputs made by the same generators as below.
 * Whole streams, read back intact and damaged, are in test-reader.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <zlib.h>

#include "common/error.h"
#include "stream/stream.h"
#include "stream/test-util.h"

/* ---- input generators (the golden script uses the same ones) ---- */

static unsigned char *
gen_lcg (uint32_t seed, size_t n)
{
  unsigned char *p = malloc (n ? n : 1);

  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    p[i] = (seed >> 16) & 0xff;
  }
  return p;
}

static unsigned char *
gen_pattern (size_t n)
{
  unsigned char *p = malloc (n);

  for (size_t i = 0; i < n; i++)
    p[i] = (i * 7 + (i >> 10)) & 0xff;
  return p;
}

static uint32_t mix_state;
static unsigned
mix_next (void)
{
  mix_state = mix_state * 1103515245u + 12345u;
  return (mix_state >> 16) & 0x7fff;
}

/* Random runs, constant runs and copies: compressible, with long matches. */
static unsigned char *
gen_mixed (uint32_t seed, size_t n)
{
  size_t cap = n + 8192, len = 0;
  unsigned char *p = malloc (cap);

  mix_state = seed;
  while (len < n) {
    unsigned k = mix_next () % 3, l = mix_next () % 4096 + 1;

    if (k == 0)
      for (unsigned j = 0; j < l; j++)
        p[len++] = mix_next () & 0xff;
    else if (k == 1) {
      memset (p + len, mix_next () & 3, l);
      len += l;
    }
    else if (len > 0) {
      size_t src = (size_t) mix_next () * 97 % len;

      for (unsigned j = 0; j < l; j++, len++)
        p[len] = src + j < len ? p[src + j] : 0;
    }
  }
  return p;
}

/* ---- frames ---- */

static void
test_frame (void)
{
  char h[VB_FRAME_LEN + 1];
  enum vb_frame_kind k;
  uint64_t s, l;
  static const char *const bad[] = {
    "date 0000000000001000 000000000000002a\r\n",    /* unknown kind */
    "DATA 0000000000001000 000000000000002a\r\n",    /* upper-case kind */
    "data 0000000000001000 000000000000002A\r\n",    /* upper-case hex */
    "data 000000000000100g 000000000000002a\r\n",    /* non-hex */
    "data 0000000000001000-000000000000002a\r\n",    /* missing space */
    "data  000000000000100 000000000000002a\r\n",    /* shifted */
    "data 0000000000001000 000000000000002a\n\n",    /* missing CR */
    "data 0000000000001000 000000000000002a\r\r",    /* missing LF */
    "data 0000000000001000 +00000000000002a\r\n",    /* sign */
  };

  vb_frame_format (h, VB_FRAME_DATA, 0x1000, 0x2a);
  CHECK (memcmp (h, "data 0000000000001000 000000000000002a\r\n", 40) == 0);
  vb_frame_format (h, VB_FRAME_STOP, 0, 0);
  CHECK (memcmp (h, "stop 0000000000000000 0000000000000000\r\n", 40) == 0);
  vb_frame_format (h, VB_FRAME_ZERO, UINT64_MAX, 0xabcdef);
  CHECK (memcmp (h, "zero ffffffffffffffff 0000000000abcdef\r\n", 40) == 0);
  CHECK (vb_frame_parse (h, &k, &s, &l) == 0);
  CHECK (k == VB_FRAME_ZERO && s == UINT64_MAX && l == 0xabcdef);
  for (int kind = VB_FRAME_META; kind <= VB_FRAME_COMP; kind++) {
    vb_frame_format (h, kind, 12345, 678);
    CHECK (vb_frame_parse (h, &k, &s, &l) == 0);
    CHECK ((int) k == kind && s == 12345 && l == 678);
    CHECK (memcmp (h, vb_frame_kind_name (kind), 4) == 0);
  }
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    vb_set_error ("none");
    CHECK (vb_frame_parse (bad[i], &k, &s, &l) == -1);
    CHECK (strcmp (vb_get_error (), "none") != 0);
  }
  CHECK_ERR (vb_frame_parse (bad[0], &k, &s, &l) == -1, "bad frame kind");
  CHECK_ERR (vb_frame_parse (bad[6], &k, &s, &l) == -1, "CR LF");
}

/* ---- metadata ---- */

static const char meta_golden1[] =
  "{\n    \"virtualSize\": 10737418240,\n    \"dataSize\": 1048576,\n"
  "    \"date\": \"2026-11-22T01:31:23.238748\",\n    \"diskName\": \"sda\",\n"
  "    \"diskFormat\": \"qcow2\",\n    \"checkpointName\": \"virtnbdbackup.3\",\n"
  "    \"compressed\": 2,\n    \"compressionMethod\": \"lz4\",\n"
  "    \"parentCheckpoint\": \"virtnbdbackup.2\",\n    \"incremental\": true,\n"
  "    \"streamVersion\": 2\n}";
static const char meta_golden2[] =
  "{\n    \"virtualSize\": 10737418240,\n    \"dataSize\": 0,\n"
  "    \"date\": \"2026-11-22T01:31:23.238748\",\n"
  "    \"diskName\": \"v\\u00e9/\\\"q\\\\\\n\\t\\u0001\\u007f\\ud83d\\ude00\",\n"
  "    \"diskFormat\": \"qcow2\",\n    \"checkpointName\": \"\",\n"
  "    \"compressed\": false,\n    \"compressionMethod\": \"lz4\",\n"
  "    \"parentCheckpoint\": \"\",\n    \"incremental\": false,\n"
  "    \"streamVersion\": 2\n}";


static int
meta_parse_str (const char *json, struct vb_meta *m)
{
  return vb_meta_from_json (json, strlen (json), m);
}

static void
test_meta_write (void)
{
  struct vb_meta m;
  size_t len;
  char *s;

  fill_meta (&m, "sda", true);
  s = vb_meta_to_json (&m, &len);
  CHECK (s && len == strlen (meta_golden1) && memcmp (s, meta_golden1, len) == 0);
  free (s);
  vb_meta_clear (&m);

  fill_meta (&m, "v\xc3\xa9/\"q\\\n\t\x01\x7f\xf0\x9f\x98\x80", false);
  m.data_size = 0;
  m.incremental = false;
  free (m.checkpoint_name);
  free (m.parent_checkpoint);
  m.checkpoint_name = strdup ("");
  m.parent_checkpoint = strdup ("");
  s = vb_meta_to_json (&m, &len);
  CHECK (s && len == strlen (meta_golden2) && memcmp (s, meta_golden2, len) == 0);
  free (s);
  free (m.disk_name);
  m.disk_name = strdup ("bad\xc3(utf8");
  CHECK_ERR (vb_meta_to_json (&m, &len) == NULL, "UTF-8");
  vb_meta_clear (&m);
}

static void
test_meta_read (void)
{
  struct vb_meta m = { 0 };

  CHECK (meta_parse_str (meta_golden1, &m) == 0);
  CHECK (m.virtual_size == 10737418240ULL && m.data_size == 1048576);
  CHECK (strcmp (m.date, "2026-11-22T01:31:23.238748") == 0);
  CHECK (strcmp (m.disk_name, "sda") == 0 && strcmp (m.disk_format, "qcow2") == 0);
  CHECK (strcmp (m.checkpoint_name, "virtnbdbackup.3") == 0);
  CHECK (strcmp (m.parent_checkpoint, "virtnbdbackup.2") == 0);
  CHECK (m.compressed && m.compression_level == 2 && m.incremental);
  CHECK (strcmp (m.compression_method, "lz4") == 0 && m.stream_version == 2);

  CHECK (meta_parse_str (meta_golden2, &m) == 0);
  CHECK (strcmp (m.disk_name, "v\xc3\xa9/\"q\\\n\t\x01\x7f\xf0\x9f\x98\x80") == 0);
  CHECK (!m.compressed && !m.incremental && m.data_size == 0);

  /* Old spelling, unknown keys, optional keys missing. */
  CHECK (meta_parse_str ("{\"virtualSize\": 5, \"dataSize\": 0, \"diskName\": "
                         "\"vda\", \"checkpointName\": \"\", \"compressed\": "
                         "false, \"incremental\": false, \"stream-version\": 1,"
                         " \"whatever\": [1, {}]}", &m) == 0);
  CHECK (m.stream_version == 1 && strcmp (m.date, "") == 0);
  CHECK (strcmp (m.compression_method, "lz4") == 0);
  CHECK (strcmp (m.parent_checkpoint, "") == 0);

  CHECK_ERR (meta_parse_str ("{\"dataSize\": 0, \"diskName\": \"vda\", "
                             "\"checkpointName\": \"\", \"compressed\": false, "
                             "\"incremental\": false}", &m) == -1,
             "virtualSize is missing");
  CHECK_ERR (meta_parse_str ("{\"virtualSize\": 5, \"dataSize\": 0, \"diskName\": 3,"
                             " \"checkpointName\": \"\", \"compressed\": false, "
                             "\"incremental\": false}", &m) == -1,
             "diskName is not a string");
  CHECK_ERR (meta_parse_str ("{\"virtualSize\": -5, \"dataSize\": 0, \"diskName\": "
                             "\"a\", \"checkpointName\": \"\", \"compressed\": "
                             "false, \"incremental\": false}", &m) == -1,
             "negative");
  CHECK_ERR (meta_parse_str ("{\"virtualSize\": 5, \"dataSize\": 0, \"diskName\": "
                             "\"a\", \"checkpointName\": \"\", \"compressed\": "
                             "\"yes\", \"incremental\": false}", &m) == -1,
             "compressed");
  CHECK_ERR (meta_parse_str ("{\"virtualSize\": 5, \"dataSize\": 0, \"diskName\": "
                             "\"a\", \"checkpointName\": \"\", \"compressed\": "
                             "false, \"incremental\": 1}", &m) == -1,
             "incremental is not a boolean");
  CHECK_ERR (meta_parse_str ("[1, 2]", &m) == -1, "not a JSON object");
  CHECK_ERR (meta_parse_str ("{\"virtualSize\": 5", &m) == -1, "invalid JSON");
  CHECK_ERR (meta_parse_str ("{} x", &m) == -1, "");
  CHECK (m.disk_name == NULL);          /* cleared on failure */
  CHECK_ERR (vb_meta_from_json ("{}\0{}", 5, &m) == -1, "invalid JSON");
  vb_meta_clear (&m);
}

static void
test_meta_now (void)
{
  char *s = vb_meta_now ();
  size_t n = strlen (s);

  CHECK (n == 26 || n == 19);
  CHECK (s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' && s[16] == ':');
  if (n == 26)
    CHECK (s[19] == '.');
  for (size_t i = 0; i < n; i++)
    if (i != 4 && i != 7 && i != 10 && i != 13 && i != 16 && i != 19)
      CHECK (s[i] >= '0' && s[i] <= '9');
  free (s);
}

/* ---- lz4 ---- */

struct lz4_golden {
  const char *input;
  int level;
  size_t inlen, outlen;
  uint32_t adler;
};
static const struct lz4_golden lz4_goldens[] = {
  { "one", 0, 1, 32, 1241777463u },
  { "one", 2, 1, 32, 1241777463u },
  { "one", 9, 1, 32, 1241777463u },
  { "pat200k", 0, 204800, 2479, 156745883u },
  { "pat200k", 2, 204800, 2479, 156745883u },
  { "pat200k", 9, 204800, 1948, 2199773443u },
  { "rand70000", 0, 70000, 70039, 1078149474u },
  { "rand70000", 2, 70000, 70039, 1078149474u },
  { "rand70000", 9, 70000, 70039, 1078149474u },
  { "mixed3m", 0, 3158073, 1590261, 206806134u },
  { "mixed3m", 2, 3158073, 1590261, 206806134u },
  { "mixed3m", 9, 3158073, 1583324, 1472334751u },
};
/* lz4.frame.compress(b"A", ...level 2) */
static const unsigned char lz4_one[] = {
  0x04, 0x22, 0x4d, 0x18, 0x7c, 0x40, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x74, 0x01, 0x00, 0x00, 0x80, 0x41, 0x4d, 0x9a, 0x65, 0x10,
  0x00, 0x00, 0x00, 0x00, 0x4d, 0x9a, 0x65, 0x10,
};

static unsigned char *
make_input (const char *name, size_t n)
{
  if (strcmp (name, "one") == 0) {
    unsigned char *p = malloc (1);
    p[0] = 'A';
    return p;
  }
  if (strcmp (name, "pat200k") == 0)
    return gen_pattern (n);
  if (strcmp (name, "rand70000") == 0)
    return gen_lcg (42, n);
  return gen_mixed (7, n);
}

/* Compress IN feeding CHUNK bytes per update; returns malloc'd output. */
static unsigned char *
lz4_compress (int level, const unsigned char *in, size_t n, size_t chunk,
              size_t *outlen)
{
  struct vb_lz4c *c = vb_lz4c_new (level);
  size_t cap = vb_lz4c_bound (c, n) + vb_lz4c_bound (c, chunk), o = 0;
  unsigned char *out = malloc (cap);
  ssize_t r = vb_lz4c_begin (c, n, out, cap);

  CHECK (r > 0);
  o += r;
  for (size_t off = 0; off < n && r >= 0; off += chunk) {
    size_t k = n - off < chunk ? n - off : chunk;

    CHECK (cap - o >= vb_lz4c_bound (c, k));
    r = vb_lz4c_update (c, in + off, k, out + o, cap - o);
    CHECK (r >= 0);
    o += r > 0 ? r : 0;
  }
  r = vb_lz4c_end (c, out + o, cap - o);
  CHECK (r > 0);
  o += r > 0 ? r : 0;
  vb_lz4c_free (c);
  *outlen = o;
  return out;
}

static void
test_lz4_golden (const struct lz4_golden *g)
{
  static const size_t chunks[] = { SIZE_MAX, 4096, 1 << 20, 12345, 65536 };
  unsigned char *in = make_input (g->input, g->inlen);

  for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
    size_t chunk = chunks[i] == SIZE_MAX ? g->inlen : chunks[i], len;
    unsigned char *out = lz4_compress (g->level, in, g->inlen, chunk, &len);
    uint32_t a = adler32 (adler32 (0, NULL, 0), out, len);

    if (len != g->outlen || a != g->adler) {
      fprintf (stderr, "lz4 %s level %d chunk %zu: %zu bytes adler %u, "
               "python: %zu bytes adler %u\n", g->input, g->level, chunk,
               len, a, g->outlen, g->adler);
      failures++;
    }
    if (strcmp (g->input, "one") == 0)
      CHECK (len == sizeof lz4_one && memcmp (out, lz4_one, len) == 0);
    if (i == 0) {
      unsigned char *back = malloc (g->inlen);

      CHECK (vb_lz4_decompress_frame (out, len, back, g->inlen) == 0);
      CHECK (memcmp (back, in, g->inlen) == 0);
      out[len / 2] ^= 0x10;
      CHECK (vb_lz4_decompress_frame (out, len, back, g->inlen) == -1);
      out[len / 2] ^= 0x10;
      out[len - 1] ^= 0x01;     /* content checksum */
      CHECK (vb_lz4_decompress_frame (out, len, back, g->inlen) == -1);
      out[len - 1] ^= 0x01;
      CHECK (vb_lz4_decompress_frame (out, len - 1, back, g->inlen) == -1);
      if (g->inlen > 1)
        CHECK (vb_lz4_decompress_frame (out, len, back, g->inlen - 1) == -1);
      free (back);
    }
    free (out);
  }
  free (in);
}

static void
test_lz4 (void)
{
  struct vb_lz4c *c = vb_lz4c_new (2);
  unsigned char buf[256];

  for (size_t i = 0; i < sizeof lz4_goldens / sizeof lz4_goldens[0]; i++)
    test_lz4_golden (&lz4_goldens[i]);
  /* Feeding more or less than announced is refused. */
  CHECK (vb_lz4c_begin (c, 4, buf, sizeof buf) > 0);
  CHECK (vb_lz4c_update (c, "abcde", 5, buf, sizeof buf) == -1);
  CHECK (vb_lz4c_update (c, "abc", 3, buf, sizeof buf) == 0);
  CHECK (vb_lz4c_end (c, buf, sizeof buf) == -1);
  CHECK (vb_lz4c_begin (c, VB_STREAM_MAX_PIECE + 1ULL, buf, sizeof buf) == -1);
  vb_lz4c_free (c);
}

static void
test_zstd (void)
{
  size_t n = 3158073, cap, o = 0;
  unsigned char *in = gen_mixed (7, n), *out, *back = malloc (n);
  struct vb_zstdc *c = vb_zstdc_new (3);
  ssize_t r;

  cap = vb_zstdc_bound (c, n) + vb_zstdc_bound (c, 0);
  out = malloc (cap);
  CHECK (vb_zstdc_begin (c, n, out, cap) == 0);
  for (size_t off = 0; off < n; off += 100000) {
    size_t k = n - off < 100000 ? n - off : 100000;

    r = vb_zstdc_update (c, in + off, k, out + o, cap - o);
    CHECK (r >= 0);
    o += r;
  }
  r = vb_zstdc_end (c, out + o, cap - o);
  CHECK (r > 0);
  o += r;
  CHECK (o < n / 2);
  CHECK (vb_zstd_decompress_frame (out, o, back, n) == 0);
  CHECK (memcmp (in, back, n) == 0);
  out[o - 2] ^= 0x40;           /* checksum */
  CHECK (vb_zstd_decompress_frame (out, o, back, n) == -1);
  vb_zstdc_free (c);
  free (in);
  free (out);
  free (back);
}

/* ---- trailer ---- */

static void
test_trailer (void)
{
  static const char golden[] =
    "[1234, {\"51050570\": [25431375, 25619195]}, 7, {\"33554700\": [33554700]}]";
  struct vb_trailer t, u;
  const uint64_t a = 1234, b[] = { 25431375, 25619195 }, c = 7, d = 33554700;
  size_t len;
  char *s;

  vb_trailer_init (&t);
  vb_trailer_init (&u);
  CHECK (vb_trailer_add (&t, &a, 1) == 0);
  CHECK (vb_trailer_add (&t, b, 2) == 0);
  CHECK (vb_trailer_add_frame (&t, 4096, &c, 1) == 0);
  CHECK (vb_trailer_add_frame (&t, VB_STREAM_MAX_PIECE, &d, 1) == 0);
  CHECK (vb_trailer_add (&t, &a, 0) == -1);
  s = vb_trailer_to_json (&t, &len);
  CHECK (s && len == strlen (golden) && memcmp (s, golden, len) == 0);
  free (s);
  CHECK (vb_trailer_from_json (golden, strlen (golden), &u) == 0);
  CHECK (u.nframes == 4 && u.npieces[1] == 2 && u.pieces[1][1] == 25619195);
  CHECK (u.as_object[3] && !u.as_object[2]);
  s = vb_trailer_to_json (&u, &len);
  CHECK (s && len == strlen (golden) && memcmp (s, golden, len) == 0);
  free (s);
  CHECK (vb_trailer_from_json ("[]", 2, &u) == 0 && u.nframes == 0);
  s = vb_trailer_to_json (&u, &len);
  CHECK (s && strcmp (s, "[]") == 0);
  free (s);
#define BAD(j, msg) CHECK_ERR (vb_trailer_from_json (j, strlen (j), &u) == -1, msg)
  BAD ("[{\"10\": [3, 4]}]", "entry 0");
  BAD ("[1, -2]", "entry 1 is not a size");
  BAD ("[\"5\"]", "entry 0");
  BAD ("[{\"7\": [3, 4], \"8\": [8]}]", "entry 0");
  BAD ("[{\"x\": [3]}]", "entry 0");
  BAD ("[{\"0\": []}]", "entry 0");
  BAD ("{\"a\": 1}", "not a JSON list");
  BAD ("[1, 2", "invalid JSON");
#undef BAD
  CHECK (u.nframes == 0);
  vb_trailer_clear (&t);
  vb_trailer_clear (&u);
}

int
main (void)
{
  test_frame ();
  test_meta_write ();
  test_meta_read ();
  test_meta_now ();
  test_lz4 ();
  test_zstd ();
  test_trailer ();
  return vb_test_end ("test-stream");
}
