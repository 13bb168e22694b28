/* test-stream.c: unit tests for the stream format.
 *
 * Golden values come from the peer's own libraries, generated once with
 * python3 and embedded here:
 *   - json.dumps(meta, indent=4) for the metadata,
 *   - json.dumps(list) for the trailer,
 *   - lz4.frame.compress(d, content_checksum=True, block_checksum=True,
 *     compression_level=L) (python3-lz4 4.0.2, liblz4 1.9.4): output length
 *     and zlib.adler32, for inputs made by the same generators as below.
 * Whole streams are built with the writer pieces in a memfd and read back,
 * intact and damaged.
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

static int failures;

#define CHECK(cond) do {                                                \
    if (!(cond)) {                                                      \
      fprintf (stderr, "%s:%d: CHECK failed: %s\n  last error: %s\n",   \
               __FILE__, __LINE__, #cond, vb_get_error ());             \
      failures++;                                                       \
    }                                                                   \
  } while (0)
#define CHECK_ERR(cond, substr) do {                                    \
    CHECK (cond);                                                       \
    if (strstr (vb_get_error (), (substr)) == NULL) {                   \
      fprintf (stderr, "%s:%d: error \"%s\" lacks \"%s\"\n",            \
               __FILE__, __LINE__, vb_get_error (), (substr));          \
      failures++;                                                       \
    }                                                                   \
  } while (0)

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

static void
fill_meta (struct vb_meta *m, const char *disk, bool compressed)
{
  memset (m, 0, sizeof *m);
  m->virtual_size = 10737418240ULL;
  m->data_size = 1048576;
  m->date = strdup ("2026-11-22T01:31:23.238748");
  m->disk_name = strdup (disk);
  m->disk_format = strdup ("qcow2");
  m->checkpoint_name = strdup ("virtnbdbackup.3");
  m->parent_checkpoint = strdup ("virtnbdbackup.2");
  m->compressed = compressed;
  m->compression_level = 2;
  m->compression_method = strdup ("lz4");
  m->incremental = true;
  m->stream_version = 2;
}

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

/* ---- whole streams ---- */

enum method { PLAIN, LZ4, ZSTD };

struct tframe {
  enum vb_frame_kind kind;
  uint64_t start, length;
};

/* Disk contents: compressible but position dependent. */
static void
disk_bytes (uint64_t off, unsigned char *buf, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    uint64_t o = off + i;
    buf[i] = (o & 0x3ff) < 600 ? (uint8_t) ((o >> 10) * 13) : (uint8_t) (o * 7 ^ (o >> 8));
  }
}

static void
xwrite (int fd, const void *p, size_t n)
{
  if (write (fd, p, n) != (ssize_t) n)
    abort ();
}

#define CHUNK (1024 * 1024)
/* Disk bytes per piece: the peer's size, or our zstd size for some tests. */
static uint64_t piece_len = VB_STREAM_MAX_PIECE;

/* Compress one data frame in pieces; returns the piece count. */
static size_t
write_compressed (int fd, enum method m, uint64_t start, uint64_t len,
                  uint64_t *sizes, unsigned char *in, unsigned char *out)
{
  struct vb_lz4c *l = m == LZ4 ? vb_lz4c_new (2) : NULL;
  struct vb_zstdc *z = m == ZSTD ? vb_zstdc_new (3) : NULL;
  size_t cap = m == LZ4 ? vb_lz4c_bound (l, CHUNK) : vb_zstdc_bound (z, CHUNK);
  size_t np = 0;

  for (uint64_t p = 0; p < len; p += piece_len, np++) {
    uint64_t plen = len - p < piece_len ? len - p : piece_len;
    ssize_t r = l ? vb_lz4c_begin (l, plen, out, cap) : vb_zstdc_begin (z, plen, out, cap);

    sizes[np] = r;
    xwrite (fd, out, r);
    for (uint64_t q = 0; q < plen; q += CHUNK) {
      size_t k = plen - q < CHUNK ? plen - q : CHUNK;

      disk_bytes (start + p + q, in, k);
      r = l ? vb_lz4c_update (l, in, k, out, cap) : vb_zstdc_update (z, in, k, out, cap);
      CHECK (r >= 0);
      xwrite (fd, out, r);
      sizes[np] += r;
    }
    r = l ? vb_lz4c_end (l, out, cap) : vb_zstdc_end (z, out, cap);
    CHECK (r > 0);
    xwrite (fd, out, r);
    sizes[np] += r;
  }
  vb_lz4c_free (l);
  vb_zstdc_free (z);
  return np;
}

static void
write_frame (int fd, enum vb_frame_kind k, uint64_t s, uint64_t l)
{
  char h[VB_FRAME_LEN];

  vb_frame_format (h, k, s, l);
  xwrite (fd, h, sizeof h);
}

/* Build a stream file in a memfd.  DATA_SIZE (UINT64_MAX: computed) goes
 * into the metadata as is, so tests can lie. */
static int
build_stream (enum method m, uint64_t vsize, const struct tframe *f, size_t n,
              uint64_t data_size)
{
  int fd = memfd_create ("stream", 0);
  struct vb_meta meta;
  struct vb_trailer t;
  unsigned char *in = malloc (CHUNK), *out = malloc (2 * CHUNK);
  size_t len;
  char *json;

  fill_meta (&meta, "sda", m != PLAIN);
  meta.virtual_size = vsize;
  meta.data_size = 0;
  for (size_t i = 0; i < n; i++)
    if (f[i].kind == VB_FRAME_DATA)
      meta.data_size += f[i].length;
  if (data_size != UINT64_MAX)
    meta.data_size = data_size;
  free (meta.compression_method);
  meta.compression_method = strdup (m == ZSTD ? "zstd" : "lz4");
  json = vb_meta_to_json (&meta, &len);
  write_frame (fd, VB_FRAME_META, 0, len);
  xwrite (fd, json, len);
  xwrite (fd, VB_TERM, VB_TERM_LEN);
  free (json);
  vb_meta_clear (&meta);
  vb_trailer_init (&t);
  for (size_t i = 0; i < n; i++) {
    write_frame (fd, f[i].kind, f[i].start, f[i].length);
    if (f[i].kind != VB_FRAME_DATA)
      continue;
    if (m == PLAIN) {
      for (uint64_t q = 0; q < f[i].length; q += CHUNK) {
        size_t k = f[i].length - q < CHUNK ? f[i].length - q : CHUNK;
        disk_bytes (f[i].start + q, in, k);
        xwrite (fd, in, k);
      }
    }
    else {
      uint64_t sizes[64];
      size_t np = write_compressed (fd, m, f[i].start, f[i].length, sizes, in, out);
      CHECK (vb_trailer_add_frame (&t, f[i].length, sizes, np) == 0);
    }
    xwrite (fd, VB_TERM, VB_TERM_LEN);
  }
  write_frame (fd, VB_FRAME_STOP, 0, 0);
  if (m != PLAIN) {
    json = vb_trailer_to_json (&t, &len);
    xwrite (fd, json, len);
    xwrite (fd, VB_TERM, VB_TERM_LEN);
    write_frame (fd, VB_FRAME_COMP, 0, len);
    free (json);
  }
  vb_trailer_clear (&t);
  free (in);
  free (out);
  return fd;
}

/* Read the whole stream, checking frames against F and payloads against
 * disk_bytes.  Returns 0, or -1 at the first error. */
static int
read_stream (int fd, const struct tframe *f, size_t n, size_t bufsize)
{
  struct vb_reader *r = vb_reader_open (fd, "sda.full.data");
  unsigned char *buf = malloc (bufsize), *want = malloc (bufsize);
  struct vb_frame fr;
  size_t i = 0;
  int rc = -1, nr;

  if (r == NULL)
    goto out;
  while ((nr = vb_reader_next (r, &fr)) == 1) {
    uint64_t pos = 0;
    ssize_t got;

    if (f && (i >= n + 1 || fr.kind != (i < n ? f[i].kind : VB_FRAME_STOP)
              || (i < n && (fr.start != f[i].start || fr.length != f[i].length))))
      goto out;
    i++;
    while ((got = vb_reader_read (r, buf, bufsize)) > 0) {
      disk_bytes (fr.start + pos, want, got);
      if (f && memcmp (buf, want, got) != 0) {
        vb_set_error ("payload differs at 0x%" PRIx64, fr.start + pos);
        goto out;
      }
      pos += got;
    }
    if (got == -1 || (fr.kind == VB_FRAME_DATA && pos != fr.length))
      goto out;
  }
  if (nr == 0 && (f == NULL || i == n + 1) && vb_reader_next (r, &fr) == 0)
    rc = 0;
 out:
  vb_reader_close (r);
  free (buf);
  free (want);
  return rc;
}

static const struct tframe small_frames[] = {
  { VB_FRAME_DATA, 0, 4096 },
  { VB_FRAME_ZERO, 4096, 61440 },
  { VB_FRAME_DATA, 65536, 200000 },
  { VB_FRAME_ZERO, 265536, 1 << 20 },
  { VB_FRAME_DATA, 2 << 20, 512 },
};
#define NSMALL (sizeof small_frames / sizeof small_frames[0])
#define VSIZE (4 << 20)

static off_t
fd_size (int fd)
{
  return lseek (fd, 0, SEEK_END);
}

static void
flip (int fd, off_t off, unsigned char mask)
{
  unsigned char c;

  if (pread (fd, &c, 1, off) != 1)
    abort ();
  c ^= mask;
  if (pwrite (fd, &c, 1, off) != 1)
    abort ();
}

/* Copy of FD cut at LEN. */
static int
truncated_copy (int fd, off_t len)
{
  int c = memfd_create ("cut", 0);
  unsigned char *buf = malloc (len ? len : 1);

  if (pread (fd, buf, len, 0) != len)
    abort ();
  xwrite (c, buf, len);
  free (buf);
  return c;
}

/* The peer's own writer (virtnbdbackup 1.9.15 writeBlock/writeChunk,
 * dumpMetadata with the clock fixed to our test date, writeFrame and
 * writeCompressionTrailer, fed disk_bytes) produced files of these lengths
 * and adler32s for small_frames: ours must be the same bytes. */
static void
test_peer_identical (void)
{
  static const struct { enum method m; off_t len; uint32_t adler; } peer[] = {
    { PLAIN, 205232, 1066457430u },
    { LZ4, 35143, 651705388u },
  };

  for (size_t i = 0; i < 2; i++) {
    int fd = build_stream (peer[i].m, VSIZE, small_frames, NSMALL, UINT64_MAX);
    off_t size = fd_size (fd);
    unsigned char *buf = malloc (size);

    CHECK (pread (fd, buf, size, 0) == size);
    CHECK (size == peer[i].len);
    CHECK (adler32 (adler32 (0, NULL, 0), buf, size) == peer[i].adler);
    free (buf);
    close (fd);
  }
}

static void
test_roundtrip (void)
{
  for (enum method m = PLAIN; m <= ZSTD; m++) {
    int fd = build_stream (m, VSIZE, small_frames, NSMALL, UINT64_MAX);
    struct vb_meta meta;

    CHECK (read_stream (fd, small_frames, NSMALL, 4 << 20) == 0);
    CHECK (read_stream (fd, small_frames, NSMALL, 1000) == 0);
    CHECK (read_stream (fd, small_frames, NSMALL, 1) == 0);
    CHECK (vb_stream_read_meta_fd (fd, "x", &meta) == 0);
    CHECK (meta.virtual_size == VSIZE && meta.data_size == 4096 + 200000 + 512);
    CHECK (meta.compressed == (m != PLAIN));
    vb_meta_clear (&meta);
    close (fd);
  }
}

/* A compressed incremental of an unchanged disk has no frames at all:
 * meta, stop, "[]" trailer. */
static void
test_empty (void)
{
  for (enum method m = PLAIN; m <= ZSTD; m++) {
    int fd = build_stream (m, VSIZE, NULL, 0, UINT64_MAX);
    CHECK (read_stream (fd, NULL, 0, 4 << 20) == 0);
    close (fd);
  }
}

/* Skipping frames (and next() without reading) still validates. */
static void
test_skip (void)
{
  int fd = build_stream (LZ4, VSIZE, small_frames, NSMALL, UINT64_MAX);
  struct vb_reader *r = vb_reader_open (fd, "s");
  struct vb_frame f;
  unsigned char b[10];
  int n = 0;

  CHECK (r != NULL);
  CHECK (vb_reader_next (r, &f) == 1 && vb_reader_read (r, b, 10) == 10);
  CHECK (vb_reader_skip (r) == 0 && vb_reader_read (r, b, 10) == 0);
  while (vb_reader_next (r, &f) == 1)
    n++;
  CHECK (n == 5 && f.kind == VB_FRAME_STOP);
  vb_reader_close (r);
  /* A damaged piece is caught by skip too. */
  flip (fd, fd_size (fd) - 200, 0x04);
  r = vb_reader_open (fd, "s");
  CHECK (r != NULL);
  while ((n = vb_reader_next (r, &f)) == 1)
    ;
  CHECK (n == -1);
  {
    char *first = strdup (vb_get_error ());

    vb_set_error ("other");
    CHECK (vb_reader_next (r, &f) == -1);       /* sticky, same message */
    CHECK (strcmp (vb_get_error (), first) == 0 && strstr (first, "offset 0x"));
    free (first);
  }
  vb_reader_close (r);
  close (fd);
}

/* Large frames: several pieces, the peer's {"total": [...]} form. */
static void
test_big (void)
{
  static const struct tframe big[] = {
    { VB_FRAME_DATA, 0, VB_STREAM_MAX_PIECE },
    { VB_FRAME_DATA, VB_STREAM_MAX_PIECE, VB_STREAM_MAX_PIECE + 12345 },
  };
  int fd = build_stream (LZ4, 3ULL * VB_STREAM_MAX_PIECE, big, 2, UINT64_MAX);
  char tail[200];
  ssize_t n = pread (fd, tail, sizeof tail - 1, fd_size (fd) - (sizeof tail - 1));

  tail[n > 0 ? n : 0] = '\0';
  CHECK (n > 0 && memmem (tail, n, "[{\"", 3) && memmem (tail, n, "]}, {\"", 6));
  CHECK (read_stream (fd, big, 2, 4 << 20) == 0);
  /* Byte-identical to the peer's writer on the same disk (see
   * test_peer_identical): one 32 MiB piece and a 32 MiB + 12345 frame. */
  {
    off_t size = fd_size (fd);
    unsigned char *buf = malloc (size);

    CHECK (pread (fd, buf, size, 0) == size);
    CHECK (size == 9512255);
    CHECK (adler32 (adler32 (0, NULL, 0), buf, size) == 1612009310u);
    free (buf);
  }
  close (fd);
  fd = build_stream (ZSTD, 3ULL * VB_STREAM_MAX_PIECE, big, 2, UINT64_MAX);
  CHECK (read_stream (fd, big, 2, 3 << 20) == 0);
  close (fd);
}

static void
test_truncation (void)
{
  for (enum method m = PLAIN; m <= ZSTD; m++) {
    int fd = build_stream (m, VSIZE, small_frames, NSMALL, UINT64_MAX);
    off_t size = fd_size (fd);
    int bad = 0;

    for (off_t cut = 0; cut < size; cut += (cut < 2000 || size - cut < 2000) ? 1 : 997) {
      int c = truncated_copy (fd, cut);

      vb_set_error ("none");
      if (read_stream (c, NULL, 0, 65536) != -1 || strstr (vb_get_error (), "offset 0x") == NULL) {
        fprintf (stderr, "method %d cut at %jd: accepted or no offset: %s\n",
                 m, (intmax_t) cut, vb_get_error ());
        bad++;
      }
      close (c);
    }
    CHECK (bad == 0);
    close (fd);
  }
  {
    int fd = build_stream (PLAIN, VSIZE, small_frames, NSMALL, UINT64_MAX);
    int c = truncated_copy (fd, fd_size (fd) - 40);

    CHECK_ERR (read_stream (c, NULL, 0, 65536) == -1, "truncated");
    close (c);
    close (fd);
  }
}

/* Expect reading FD to fail with an error naming OFFSET and SUBSTR. */
static void
expect_fail (int fd, uint64_t offset, const char *substr, int line)
{
  char want[64];

  snprintf (want, sizeof want, "sda.full.data: offset 0x%" PRIx64 ":", offset);
  vb_set_error ("none");
  if (read_stream (fd, NULL, 0, 65536) != -1 ||
      strstr (vb_get_error (), want) == NULL ||
      strstr (vb_get_error (), substr) == NULL) {
    fprintf (stderr, "line %d: wanted failure \"%s ... %s\", got: %s\n",
             line, want, substr, vb_get_error ());
    failures++;
  }
}
#define EXPECT_FAIL(fd, off, s) expect_fail (fd, off, s, __LINE__)

/* Offset of the I'th frame header (uncompressed layout). */
static uint64_t
plain_offset (int fd, size_t idx)
{
  struct vb_reader *r = vb_reader_open (fd, "x");
  struct vb_frame f = { 0 };

  for (size_t i = 0; i <= idx; i++)
    if (vb_reader_next (r, &f) != 1)
      abort ();
  vb_reader_close (r);
  return f.file_offset;
}

static void
test_damage (void)
{
  int fd;
  uint64_t off;

  /* Header damage. */
  fd = build_stream (PLAIN, VSIZE, small_frames, NSMALL, UINT64_MAX);
  off = plain_offset (fd, 2);
  flip (fd, off, 0x20);                         /* "data" -> "Data" */
  EXPECT_FAIL (fd, off, "bad frame kind");
  flip (fd, off, 0x20);
  flip (fd, off + 10, 0x20);                    /* digit -> other char */
  EXPECT_FAIL (fd, off, "hex");
  flip (fd, off + 10, 0x20);
  flip (fd, off + 38, 0x01);
  EXPECT_FAIL (fd, off, "CR LF");
  flip (fd, off + 38, 0x01);
  /* CR LF after an uncompressed payload. */
  flip (fd, off + 40 + 200000, 0x01);
  EXPECT_FAIL (fd, off + 40 + 200000, "not followed by CR LF");
  flip (fd, off + 40 + 200000, 0x01);
  /* The payload itself has no checksum in the format: reads "fine". */
  flip (fd, off + 40 + 5, 0x01);
  CHECK (read_stream (fd, NULL, 0, 65536) == 0);
  CHECK (read_stream (fd, small_frames, NSMALL, 65536) == -1);
  flip (fd, off + 40 + 5, 0x01);
  /* Meta JSON. */
  flip (fd, 40, 0x01);
  EXPECT_FAIL (fd, 40, "metadata: invalid JSON");
  flip (fd, 40, 0x01);
  flip (fd, 0, 0x01);
  EXPECT_FAIL (fd, 0, "bad frame kind");
  flip (fd, 0, 0x01);
  /* Bytes after stop. */
  lseek (fd, 0, SEEK_END);
  xwrite (fd, "x", 1);
  EXPECT_FAIL (fd, fd_size (fd) - 1, "after the stop frame");
  CHECK (ftruncate (fd, fd_size (fd) - 1) == 0);
  CHECK (read_stream (fd, small_frames, NSMALL, 65536) == 0);
  close (fd);

  /* Compressed payload and trailer. */
  fd = build_stream (LZ4, VSIZE, small_frames, NSMALL, UINT64_MAX);
  off = plain_offset (fd, 2);
  flip (fd, off + 40 + 100, 0x08);
  EXPECT_FAIL (fd, off + 40, "lz4");
  flip (fd, off + 40 + 100, 0x08);
  CHECK (read_stream (fd, small_frames, NSMALL, 65536) == 0);
  flip (fd, fd_size (fd) - 41, 0x01);           /* LF before comp */
  EXPECT_FAIL (fd, fd_size (fd) - 42, "compression trailer not followed by CR LF");
  flip (fd, fd_size (fd) - 41, 0x01);
  flip (fd, fd_size (fd) - 40, 0x01);
  EXPECT_FAIL (fd, fd_size (fd) - 40, "no comp frame");
  flip (fd, fd_size (fd) - 40, 0x01);
  close (fd);
}

/* Builds the given frames and expects a failure at frame BADIDX, whose
 * header offset is known for uncompressed streams. */
static void
expect_frames_fail (enum method m, const struct tframe *f, size_t n,
                    uint64_t data_size, size_t badidx, const char *s, int line)
{
  int fd = build_stream (m, VSIZE, f, n, data_size);
  const struct tframe *prev = &f[badidx - 1];
  uint64_t off = plain_offset (fd, badidx - 1) + VB_FRAME_LEN;

  if (prev->kind == VB_FRAME_DATA)
    off += prev->length + VB_TERM_LEN;
  if (m == PLAIN)
    expect_fail (fd, off, s, line);
  else
    CHECK_ERR (read_stream (fd, NULL, 0, 65536) == -1, s);
  close (fd);
}

static void
test_bad_layout (void)
{
  static const struct tframe overlap[] = {
    { VB_FRAME_DATA, 0, 8192 }, { VB_FRAME_ZERO, 4096, 4096 },
  };
  static const struct tframe descend[] = {
    { VB_FRAME_ZERO, 8192, 4096 }, { VB_FRAME_DATA, 0, 4096 },
  };
  static const struct tframe beyond[] = {
    { VB_FRAME_ZERO, 0, 4096 }, { VB_FRAME_DATA, VSIZE - 4096, 8192 },
  };
  static const struct tframe empty[] = {
    { VB_FRAME_ZERO, 0, 4096 }, { VB_FRAME_ZERO, 8192, 0 },
  };
  static const struct tframe meta2[] = {
    { VB_FRAME_ZERO, 0, 4096 }, { VB_FRAME_META, 0, 0 },
  };
  int fd;

  expect_frames_fail (PLAIN, overlap, 2, UINT64_MAX, 1, "overlaps", __LINE__);
  expect_frames_fail (LZ4, overlap, 2, UINT64_MAX, 1, "overlaps", __LINE__);
  expect_frames_fail (PLAIN, descend, 2, UINT64_MAX, 1, "overlaps", __LINE__);
  expect_frames_fail (PLAIN, beyond, 2, UINT64_MAX, 1, "beyond the virtual size", __LINE__);
  expect_frames_fail (PLAIN, empty, 2, UINT64_MAX, 1, "empty zero frame", __LINE__);
  expect_frames_fail (PLAIN, meta2, 2, UINT64_MAX, 1, "unexpected meta frame", __LINE__);

  /* dataSize that does not match the data frames: caught at stop. */
  fd = build_stream (PLAIN, VSIZE, small_frames, NSMALL, 4096);
  EXPECT_FAIL (fd, fd_size (fd) - 40, "dataSize");
  close (fd);
  fd = build_stream (ZSTD, VSIZE, small_frames, NSMALL, 1);
  CHECK_ERR (read_stream (fd, NULL, 0, 65536) == -1, "dataSize");
  close (fd);
}

/* Trailer entries that do not match the data frames. */
static void
test_bad_trailer (void)
{
  static const struct tframe one[] = { { VB_FRAME_DATA, 0, 100000 } };
  int fd = build_stream (LZ4, VSIZE, one, 1, UINT64_MAX);
  off_t size = fd_size (fd);
  char tail[128];
  ssize_t n = pread (fd, tail, sizeof tail, size - sizeof tail);
  char *lb = memrchr (tail, '[', n);
  unsigned long csize = strtoul (lb + 1, NULL, 10);
  off_t body = size - (tail + n - lb);          /* where the JSON starts */
  char json[64], hdr[VB_FRAME_LEN];
  int len;

  /* Rewrite the trailer: two entries for one frame. */
  len = snprintf (json, sizeof json, "[%lu, 5]\r\n", csize);
  CHECK (ftruncate (fd, body) == 0);
  CHECK (pwrite (fd, json, len, body) == len);
  vb_frame_format (hdr, VB_FRAME_COMP, 0, len - 2);
  CHECK (pwrite (fd, hdr, sizeof hdr, body + len) == sizeof hdr);
  CHECK_ERR (read_stream (fd, NULL, 0, 65536) == -1, "trailer lists 2");
  /* Compressed size one too small / too large. */
  for (int delta = -1; delta <= 1; delta += 2) {
    len = snprintf (json, sizeof json, "[%lu]\r\n", csize + delta);
    CHECK (ftruncate (fd, body) == 0);
    CHECK (pwrite (fd, json, len, body) == len);
    vb_frame_format (hdr, VB_FRAME_COMP, 0, len - 2);
    CHECK (pwrite (fd, hdr, sizeof hdr, body + len) == sizeof hdr);
    CHECK (read_stream (fd, NULL, 0, 65536) == -1);
    CHECK (strstr (vb_get_error (), "offset 0x") != NULL);
  }
  /* No trailer entry at all. */
  len = snprintf (json, sizeof json, "[]\r\n");
  CHECK (ftruncate (fd, body) == 0);
  CHECK (pwrite (fd, json, len, body) == len);
  vb_frame_format (hdr, VB_FRAME_COMP, 0, len - 2);
  CHECK (pwrite (fd, hdr, sizeof hdr, body + len) == sizeof hdr);
  CHECK_ERR (read_stream (fd, NULL, 0, 65536) == -1, "no compression trailer entry");
  close (fd);
}

/* ---- whole pieces (vb_reader_piece) ---- */

/* Decompress one piece as a parallel caller does and check its content. */
static int
check_piece (enum vb_comp_method m, const unsigned char *in, size_t len,
             uint64_t content, uint64_t disk)
{
  unsigned char *out = malloc (content), *want = malloc (content);
  int rc = m == VB_COMP_ZSTD ? vb_zstd_decompress_frame (in, len, out, content)
    : vb_lz4_decompress_frame (in, len, out, content);

  disk_bytes (disk, want, content);
  if (rc == 0 && memcmp (out, want, content) != 0) {
    vb_set_error ("piece content differs at 0x%" PRIx64, disk);
    rc = -1;
  }
  free (out);
  free (want);
  return rc;
}

static int
read_frame_pieces (struct vb_reader *r, enum vb_comp_method m,
                   const struct vb_frame *fr)
{
  uint64_t next, max, content, disk = fr->start;
  unsigned char *in;
  ssize_t len;
  int rc = -1;

  if (vb_reader_piece_sizes (r, &next, &max) == -1)
    return -1;
  in = malloc (max);
  while ((len = vb_reader_piece (r, in, max, &content)) > 0) {
    if (check_piece (m, in, len, content, disk) == -1)
      goto out;
    disk += content;
  }
  if (len == 0 && disk == fr->start + fr->length)
    rc = 0;
 out:
  free (in);
  return rc;
}

/* Like read_stream, taking data frames piece by piece. */
static int
read_pieces (int fd, const struct tframe *f, size_t n)
{
  struct vb_reader *r = vb_reader_open (fd, "sda.full.data");
  enum vb_comp_method m;
  struct vb_frame fr;
  size_t i = 0;
  int nr = -1;

  if (r == NULL)
    return -1;
  if (!vb_reader_compression (r, &m))
    vb_set_error ("not compressed");
  else
    while ((nr = vb_reader_next (r, &fr)) == 1) {
      if (f && fr.kind != VB_FRAME_STOP &&
          (i >= n || fr.start != f[i].start || fr.length != f[i].length)) {
        vb_set_error ("frame %zu differs", i);
        nr = -1;
        break;
      }
      i++;
      if (fr.kind == VB_FRAME_DATA && read_frame_pieces (r, m, &fr) == -1) {
        nr = -1;
        break;
      }
    }
  if (nr == 0 && f && i != n + 1) {
    vb_set_error ("%zu frames read, %zu expected", i, n + 1);
    nr = -1;
  }
  vb_reader_close (r);
  return nr;
}

static const struct tframe piece_frames[] = {
  { VB_FRAME_DATA, 0, 4096 },
  { VB_FRAME_ZERO, 4096, 61440 },
  { VB_FRAME_DATA, 65536, 1000000 },    /* 3 pieces of 256 KiB and a rest */
  { VB_FRAME_DATA, 2 << 20, 512 },
};
#define NPIECEF (sizeof piece_frames / sizeof piece_frames[0])

static void
test_pieces_roundtrip (void)
{
  int fd = build_stream (LZ4, VSIZE, small_frames, NSMALL, UINT64_MAX);
  off_t size = fd_size (fd);
  unsigned char *buf = malloc (size);

  /* The peer's own bytes (see test_peer_identical), piece by piece. */
  CHECK (pread (fd, buf, size, 0) == size && size == 35143);
  CHECK (adler32 (adler32 (0, NULL, 0), buf, size) == 651705388u);
  CHECK (read_pieces (fd, small_frames, NSMALL) == 0);
  free (buf);
  close (fd);
  piece_len = 256 * 1024;
  for (enum method m = LZ4; m <= ZSTD; m++) {
    fd = build_stream (m, VSIZE, piece_frames, NPIECEF, UINT64_MAX);
    CHECK (read_pieces (fd, piece_frames, NPIECEF) == 0);
    CHECK (read_stream (fd, piece_frames, NPIECEF, 65536) == 0);
    close (fd);
  }
  fd = build_stream (ZSTD, VSIZE, NULL, 0, UINT64_MAX);
  CHECK (read_pieces (fd, NULL, 0) == 0);
  close (fd);
  piece_len = VB_STREAM_MAX_PIECE;
}

/* The frame header says one byte less or more than the pieces hold. */
static void
test_pieces_length (void)
{
  piece_len = 256 * 1024;
  for (enum method m = LZ4; m <= ZSTD; m++) {
    int fd = build_stream (m, VSIZE, piece_frames, NPIECEF, UINT64_MAX);
    uint64_t off = plain_offset (fd, 2);
    char hdr[VB_FRAME_LEN], want[80];

    vb_frame_format (hdr, VB_FRAME_DATA, 65536, 1000000 - 1);
    CHECK (pwrite (fd, hdr, sizeof hdr, off) == sizeof hdr);
    snprintf (want, sizeof want, "piece 3 of data frame at 0x%" PRIx64, off);
    CHECK_ERR (read_pieces (fd, NULL, 0) == -1, want);
    CHECK_ERR (read_pieces (fd, NULL, 0) == -1, "more than the 0x");
    vb_frame_format (hdr, VB_FRAME_DATA, 65536, 1000000 + 1);
    CHECK (pwrite (fd, hdr, sizeof hdr, off) == sizeof hdr);
    snprintf (want, sizeof want, "offset 0x%" PRIx64 ": data frame pieces "
              "hold 0x1 bytes less", off);
    CHECK_ERR (read_pieces (fd, NULL, 0) == -1, want);
    close (fd);
  }
  piece_len = VB_STREAM_MAX_PIECE;
}

/* Open R on FD and make its third frame (piece_frames[2]) current. */
static struct vb_reader *
open_at_big (int fd)
{
  struct vb_reader *r = vb_reader_open (fd, "p");
  struct vb_frame f;

  for (int i = 0; r && i < 3; i++)
    CHECK (vb_reader_next (r, &f) == 1);
  CHECK (r && f.kind == VB_FRAME_DATA && f.length == 1000000);
  return r;
}

static void
test_pieces_damage (void)
{
  uint64_t next, max, content;
  unsigned char *buf = malloc (VB_STREAM_MAX_PIECE);
  struct vb_reader *r;
  int fd;

  piece_len = 256 * 1024;
  fd = build_stream (ZSTD, VSIZE, piece_frames, NPIECEF, UINT64_MAX);
  /* A buffer too small consumes nothing; the reader goes on. */
  r = open_at_big (fd);
  CHECK (vb_reader_piece_sizes (r, &next, &max) == 0 && next > 0 && max >= next);
  CHECK_ERR (vb_reader_piece (r, buf, next - 1, &content) == -1,
             "more than the buffer");
  CHECK (vb_reader_piece (r, buf, next, &content) == (ssize_t) next);
  CHECK (content == 256 * 1024 && check_piece (VB_COMP_ZSTD, buf, next, content,
                                               65536) == 0);
  /* Truncated under the reader's feet: the next piece is cut short. */
  {
    int c = truncated_copy (fd, fd_size (fd));
    struct vb_reader *rc = open_at_big (c);

    CHECK (vb_reader_piece_sizes (rc, &next, &max) == 0);
    CHECK (vb_reader_piece (rc, buf, max, &content) > 0);
    CHECK (ftruncate (c, plain_offset (fd, 2) + VB_FRAME_LEN + next + 100) == 0);
    CHECK_ERR (vb_reader_piece (rc, buf, max, &content) == -1, "truncated");
    CHECK_ERR (vb_reader_piece (rc, buf, max, &content) == -1, "offset 0x");
    vb_reader_close (rc);
    close (c);
  }
  vb_reader_close (r);
  /* A flipped byte passes the reader but not the decompression. */
  flip (fd, plain_offset (fd, 2) + VB_FRAME_LEN + 5000, 0x10);
  vb_set_error ("none");
  CHECK (read_pieces (fd, piece_frames, NPIECEF) == -1);
  CHECK (strcmp (vb_get_error (), "none") != 0);
  close (fd);
  /* Pieces of an uncompressed file. */
  fd = build_stream (PLAIN, VSIZE, piece_frames, NPIECEF, UINT64_MAX);
  r = vb_reader_open (fd, "p");
  {
    enum vb_comp_method m;
    struct vb_frame f;

    CHECK (r && !vb_reader_compression (r, &m) && vb_reader_next (r, &f) == 1);
    CHECK_ERR (vb_reader_piece_sizes (r, &next, &max) == -1, "uncompressed");
  }
  vb_reader_close (r);
  close (fd);
  free (buf);
  piece_len = VB_STREAM_MAX_PIECE;
}

static void
save_fd (int fd, const char *dir, const char *name)
{
  char path[4096];
  off_t size = fd_size (fd);
  unsigned char *buf = malloc (size);
  FILE *fp;

  snprintf (path, sizeof path, "%s/%s", dir, name);
  fp = fopen (path, "w");
  if (fp == NULL || pread (fd, buf, size, 0) != size ||
      fwrite (buf, 1, size, fp) != (size_t) size || fclose (fp) != 0)
    abort ();
  free (buf);
  close (fd);
}

/* --dump DIR: the streams of test_peer_identical and test_big, to compare
 * with what the peer writes or to feed to its reader.
 * --corpus DIR: the seed corpus of tests/fuzz, tiny valid streams. */
static void
dump (const char *what, const char *dir)
{
  static const struct tframe big[] = {
    { VB_FRAME_DATA, 0, VB_STREAM_MAX_PIECE },
    { VB_FRAME_DATA, VB_STREAM_MAX_PIECE, VB_STREAM_MAX_PIECE + 12345 },
  };
  static const struct tframe tiny[] = {
    { VB_FRAME_DATA, 0, 512 }, { VB_FRAME_ZERO, 512, 3584 },
    { VB_FRAME_DATA, 4096, 100 },
  };

  if (strcmp (what, "--dump") == 0) {
    save_fd (build_stream (PLAIN, VSIZE, small_frames, NSMALL, UINT64_MAX),
             dir, "plain.data");
    save_fd (build_stream (LZ4, VSIZE, small_frames, NSMALL, UINT64_MAX),
             dir, "lz4.data");
    save_fd (build_stream (LZ4, 3ULL * VB_STREAM_MAX_PIECE, big, 2, UINT64_MAX),
             dir, "big.data");
    return;
  }
  save_fd (build_stream (PLAIN, 8192, tiny, 3, UINT64_MAX), dir, "plain.data");
  save_fd (build_stream (LZ4, 8192, tiny, 3, UINT64_MAX), dir, "lz4.data");
  save_fd (build_stream (ZSTD, 8192, tiny, 3, UINT64_MAX), dir, "zstd.data");
}

int
main (int argc, char **argv)
{
  if (argc == 3 && (strcmp (argv[1], "--dump") == 0 ||
                    strcmp (argv[1], "--corpus") == 0)) {
    dump (argv[1], argv[2]);
    return 0;
  }
  test_frame ();
  test_meta_write ();
  test_meta_read ();
  test_meta_now ();
  test_lz4 ();
  test_zstd ();
  test_trailer ();
  test_roundtrip ();
  test_empty ();
  test_peer_identical ();
  test_skip ();
  test_truncation ();
  test_damage ();
  test_bad_layout ();
  test_bad_trailer ();
  test_big ();
  test_pieces_roundtrip ();
  test_pieces_length ();
  test_pieces_damage ();
  if (failures) {
    fprintf (stderr, "test-stream: %d failures\n", failures);
    return 1;
  }
  printf ("test-stream: all passed\n");
  return 0;
}
