/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Unit tests for the storage targets: the directory target (atomic
 * commit, abort, modes, sticky errors, "target full" on a real tiny tmpfs)
 * and the streaming zip target (checked with unzip -t and Python's
 * zipfile). */
#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zlib.h>

#include "backupset/backupset.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "target/target.h"

static char dir[] = "/tmp/vbtest-target.XXXXXX";

static bool
exists (const char *name)
{
  CLEANUP_FREE char *p = vb_path_join (dir, name);

  return access (p, F_OK) == 0;
}

static mode_t
mode_of (const char *name)
{
  CLEANUP_FREE char *p = vb_path_join (dir, name);
  struct stat st;

  assert (stat (p, &st) == 0);
  return st.st_mode & 0777;
}

static char *
slurp (const char *name, size_t *len)
{
  CLEANUP_FREE char *p = vb_path_join (dir, name);

  return vb_read_file (p, len);
}

/* A recognisable byte pattern so reordered or lost bytes show. */
static void
fill (unsigned char *p, size_t len, unsigned seed)
{
  for (size_t i = 0; i < len; i++)
    p[i] = (unsigned char) ((i * 131 + seed) ^ (i >> 12));
}

static void
test_dir_open (void)
{
  /* A missing directory opens; the first write makes it, or fails. */
  struct vb_target *t = vb_target_dir_open ("/proc/virtback-nope/x", NULL);
  assert (t && vb_target_put (t, "f", "x", 1) == -1);
  assert (strstr (vb_get_error (), "/proc/virtback-nope"));
  vb_target_close (t);
  assert (vb_target_dir_open ("/etc/hostname", NULL) == NULL ||
          access ("/etc/hostname", F_OK) < 0);
}

/* Headers and payloads interleaved as the stream writer sends them; the
 * file only appears under its name at commit. */
static void
test_dir_commit (struct vb_target *t)
{
  const size_t big = 5 * 1024 * 1024 + 17;
  CLEANUP_FREE unsigned char *want = malloc (3 * (40 + big));
  size_t off = 0, len;

  assert (want && strcmp (t->ops->kind, "directory") == 0);
  struct vb_tfile *f = vb_target_create (t, "sda.full.data");
  assert (f && f->written == 0 && strcmp (f->name, "sda.full.data") == 0);
  assert (exists ("sda.full.data.partial") && !exists ("sda.full.data"));
  for (unsigned i = 0; i < 3; i++) {
    size_t n = i == 1 ? 1000 : big;
    fill (want + off, 40, i);
    fill (want + off + 40, n, i + 7);
    assert (vb_tfile_write (f, want + off, 40) == 0);
    assert (vb_tfile_write (f, want + off + 40, n) == 0);
    off += 40 + n;
  }
  assert (f->written == off);
  assert (!exists ("sda.full.data"));
  assert (vb_tfile_commit (f) == 0);
  assert (!exists ("sda.full.data.partial"));
  assert (mode_of ("sda.full.data") == 0600);
  CLEANUP_FREE char *got = slurp ("sda.full.data", &len);
  assert (got && len == off && memcmp (got, want, off) == 0);
}

static void
test_dir_abort_and_names (struct vb_target *t)
{
  struct vb_tfile *f = vb_target_create (t, "sdb.inc.virtback.1.data");

  assert (f && vb_tfile_write (f, "abc", 3) == 0);
  vb_tfile_abort (f);
  vb_tfile_abort (NULL);
  assert (!exists ("sdb.inc.virtback.1.data.partial"));
  assert (!exists ("sdb.inc.virtback.1.data"));

  const char *bad[] = { "", "..", "../x", "/etc/x", "a//b", "a/", "a/../b" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert (vb_target_create (t, bad[i]) == NULL);
    assert (strstr (vb_get_error (), "invalid file name"));
    assert (vb_target_put (t, bad[i], "x", 1) == -1);
  }
}

static void
test_dir_modes_and_put (struct vb_target *t)
{
  mode_t old = umask (077);
  size_t len;

  struct vb_target_policy pol = { 0640, 0750, (gid_t) -1 };
  struct vb_target *gt = vb_target_dir_open (dir, &pol);
  struct vb_tfile *f = vb_target_create (gt, "sda.copy.data");
  assert (f && vb_tfile_write (f, "x", 1) == 0 && vb_tfile_commit (f) == 0);
  assert (mode_of ("sda.copy.data") == 0640);
  vb_target_close (gt);
  umask (old);

  assert (vb_target_put (t, "vmconfig.virtback.0.xml", "<domain/>", 9) == 0);
  assert (mode_of ("vmconfig.virtback.0.xml") == 0600);
  assert (!exists ("vmconfig.virtback.0.xml.tmp"));
  CLEANUP_FREE char *got = slurp ("vmconfig.virtback.0.xml", &len);
  assert (got && len == 9 && memcmp (got, "<domain/>", 9) == 0);
}

static void
test_dir_raw (struct vb_target *t)
{
  unsigned char blk[4096];
  size_t len;

  fill (blk, sizeof blk, 3);
  struct vb_tfile *f = vb_target_create (t, "sda.copy.raw");
  assert (f && t->ops->pwrite && t->ops->truncate);
  assert (vb_tfile_write (f, "head", 4) == 0);     /* buffered, then flushed */
  assert (vb_tfile_truncate (f, 1 << 20) == 0);
  assert (vb_tfile_pwrite (f, blk, sizeof blk, 512 * 1024) == 0);
  assert (f->written == 512 * 1024 + sizeof blk);
  assert (vb_tfile_commit (f) == 0);
  CLEANUP_FREE char *got = slurp ("sda.copy.raw", &len);
  assert (got && len == 1 << 20);
  assert (memcmp (got, "head", 4) == 0);
  assert (memcmp (got + 512 * 1024, blk, sizeof blk) == 0);
  assert (got[4096] == 0 && got[(1 << 20) - 1] == 0);
}

/* A header written last into room kept at the start; when it is not the
 * size kept, the body moves (left or right, over more than one buffer of
 * 2 MiB) and the file ends right after it. */
static void
reserve_case (struct vb_target *t, size_t room, size_t hlen)
{
  size_t body = (5u << 20) + 12345, len;
  CLEANUP_FREE unsigned char *b = malloc (body);
  char hdr[64];
  struct vb_tfile *f = vb_target_create (t, "x.data");

  assert (b && f && hlen <= sizeof hdr);
  fill (b, body, 9);
  memset (hdr, 'H', hlen);
  assert (vb_tfile_reserve (f, room) == 0 && f->written == room);
  assert (vb_tfile_write (f, b, 1000) == 0);           /* buffered */
  assert (vb_tfile_write (f, b + 1000, body - 1000) == 0);
  if (hlen != room)
    assert (vb_tfile_shift (f, room, hlen, NULL) == 0);
  assert (f->written == hlen + body);
  assert (vb_tfile_pwrite (f, hdr, hlen, 0) == 0);
  assert (vb_tfile_commit (f) == 0);
  CLEANUP_FREE char *got = slurp ("x.data", &len);
  assert (got && len == hlen + body);
  assert (memcmp (got, hdr, hlen) == 0 && memcmp (got + hlen, b, body) == 0);
}

static void
test_dir_reserve (struct vb_target *t)
{
  volatile sig_atomic_t stop = 1;
  struct vb_tfile *f;

  reserve_case (t, 40, 40);
  reserve_case (t, 40, 37);
  reserve_case (t, 37, 41);
  f = vb_target_create (t, "y.data");
  assert (f && vb_tfile_write (f, "x", 1) == 0);
  assert (vb_tfile_reserve (f, 10) == -1);      /* only before any write */
  assert (vb_tfile_shift (f, 99, 0, NULL) == -1);       /* past the end */
  assert (vb_tfile_shift (f, 0, 1, &stop) == -1);       /* interrupted */
  assert (strstr (vb_get_error (), "interrupted"));
  vb_tfile_abort (f);
  assert (!exists ("y.data") && !exists ("y.data.partial"));
}

/* RLIMIT_FSIZE gives a real write error without privileges: the first
 * error sticks, commit reports it and leaves nothing behind. */
static void
test_dir_sticky (struct vb_target *t)
{
  struct rlimit old, lim = { 1 << 20, 1 << 20 };
  const size_t n = 3 << 20;
  CLEANUP_FREE char *buf = calloc (1, n);
  char first[1024];

  assert (buf && getrlimit (RLIMIT_FSIZE, &old) == 0);
  lim.rlim_max = old.rlim_max;
  signal (SIGXFSZ, SIG_IGN);
  assert (setrlimit (RLIMIT_FSIZE, &lim) == 0);
  struct vb_tfile *f = vb_target_create (t, "sdc.full.data");
  assert (f);
  assert (vb_tfile_write (f, buf, n) == -1);
  assert (f->error == EFBIG);
  snprintf (first, sizeof first, "%s", vb_get_error ());
  assert (strstr (first, "sdc.full.data.partial: write: File too large"));
  vb_set_error ("something else");
  assert (vb_tfile_write (f, "x", 1) == -1);
  assert (strcmp (vb_get_error (), first) == 0);
  assert (vb_tfile_commit (f) == -1);
  assert (strcmp (vb_get_error (), first) == 0);
  assert (setrlimit (RLIMIT_FSIZE, &old) == 0);
  signal (SIGXFSZ, SIG_DFL);
  assert (!exists ("sdc.full.data.partial") && !exists ("sdc.full.data"));
}

/* On a 64 KiB tmpfs: a write that fails at commit (it sat in the buffer),
 * a write that fails at once, and a put, all say "target full". */
static void
test_dir_full (void)
{
  CLEANUP_FREE char *mnt = vb_path_join (dir, "tiny");
  CLEANUP_FREE char *buf = calloc (1, 3 << 20);
  char want[512];

  assert (buf && mkdir (mnt, 0700) == 0);
  if (geteuid () != 0 || mount ("tmpfs", mnt, "tmpfs", 0, "size=64k") < 0) {
    printf ("test-target: SKIP target-full case: cannot mount a tmpfs "
            "(%s)\n", geteuid () != 0 ? "not root" : strerror (errno));
    return;
  }
  struct vb_target *t = vb_target_dir_open (mnt, NULL);
  assert (t);
  snprintf (want, sizeof want, "%s/sda.full.data.partial: write: "
            "No space left on device (target full)", mnt);
  struct vb_tfile *f = vb_target_create (t, "sda.full.data");
  assert (f && vb_tfile_write (f, buf, 1 << 20) == 0);
  assert (vb_tfile_commit (f) == -1);
  assert (strcmp (vb_get_error (), want) == 0);
  f = vb_target_create (t, "sda.full.data");
  assert (f && vb_tfile_write (f, buf, 3 << 20) == -1);
  assert (strcmp (vb_get_error (), want) == 0);
  vb_tfile_abort (f);
  assert (vb_target_put (t, "big", buf, 1 << 20) == -1);
  assert (strstr (vb_get_error (), "(target full)"));
  assert (vb_dir_is_empty (mnt) == 1);
  vb_target_close (t);
  assert (umount (mnt) == 0);
}

/* A log outlives the run's target: the target ends with its last file,
 * and each flushed line is in the file before that. */
static void
test_dir_log (void)
{
  struct vb_target *t = vb_target_dir_open (dir, NULL);
  struct vb_tfile *log = t ? vb_target_append (t, "run.log") : NULL;
  CLEANUP_FREE char *path = vb_path_join (dir, "run.log");
  struct stat st;

  assert (log);
  assert (vb_tfile_write (log, "one\n", 4) == 0);
  assert (stat (path, &st) == 0 && st.st_size == 0);
  assert (vb_tfile_flush (log) == 0);
  assert (stat (path, &st) == 0 && st.st_size == 4);
  vb_target_close (t);
  assert (vb_tfile_write (log, "two\n", 4) == 0);
  assert (vb_tfile_commit (log) == 0);
  assert (stat (path, &st) == 0 && st.st_size == 8);
  unlink (path);
}

static void
test_dir (void)
{
  struct vb_target *t = vb_target_dir_open (dir, NULL);

  assert (t && strcmp (t->where, dir) == 0);
  test_dir_open ();
  test_dir_commit (t);
  test_dir_abort_and_names (t);
  test_dir_modes_and_put (t);
  test_dir_raw (t);
  test_dir_reserve (t);
  test_dir_sticky (t);
  vb_target_close (t);
  test_dir_log ();
  test_dir_full ();
}

/* ---- zip ---- */

/* Python's zipfile must list exactly these entries and find each CRC
 * right (testzip reads every byte). */
static const char pycheck[] =
  "import sys, zipfile, zlib\n"
  "z = zipfile.ZipFile(sys.argv[1])\n"
  "assert z.testzip() is None\n"
  "for i in z.infolist():\n"
  "    d = z.read(i)\n"
  "    print(i.filename, len(d), \"%08x\" % zlib.crc32(d))\n";

/* Golden bytes: Python's zipfile, writing the same entries with the same
 * time stamps to a stream that cannot seek (as virtnbdbackup -o - does),
 * must produce our archive byte for byte. */
static const char pygolden[] =
  "import sys, zipfile\n"
  "class W:\n"
  "    b = bytearray()\n"
  "    def write(self, d): self.b += d; return len(d)\n"
  "    def flush(self): pass\n"
  "src = zipfile.ZipFile(sys.argv[1])\n"
  "w = W()\n"
  "z = zipfile.ZipFile(w, \"x\", zipfile.ZIP_STORED)\n"
  "for i in src.infolist():\n"
  "    zi = zipfile.ZipInfo(i.filename, date_time=i.date_time)\n"
  "    with z.open(zi, \"w\", force_zip64=i.extract_version >= 45) as f:\n"
  "        f.write(src.read(i))\n"
  "z.close()\n"
  "sys.exit(0 if bytes(w.b) == open(sys.argv[1], \"rb\").read() else 1)\n";

static bool have_unzip, have_python;

static int
run (const char *fmt, const char *arg)
{
  char cmd[4096];

  snprintf (cmd, sizeof cmd, fmt, arg);
  int r = system (cmd);
  return WIFEXITED (r) ? WEXITSTATUS (r) : -1;
}

/* Run python3 on PATH and return what it printed (malloc'd). */
static char *
python_listing (const char *path)
{
  char cmd[4096];
  char *out = NULL;
  size_t n = 0;
  FILE *mem = open_memstream (&out, &n), *p;
  char line[1024];

  snprintf (cmd, sizeof cmd, "python3 -c '%s' %s 2>&1", pycheck, path);
  assert (mem && (p = popen (cmd, "r")));
  while (fgets (line, sizeof line, p))
    fputs (line, mem);
  int st = pclose (p);
  fprintf (mem, "exit=%d\n", WIFEXITED (st) ? WEXITSTATUS (st) : -1);
  fclose (mem);
  return out;
}

static void
add_line (char *want, size_t size, const char *name, const void *p,
          size_t len)
{
  size_t n = strlen (want);

  snprintf (want + n, size - n, "%s %zu %08lx\n", name, len,
            crc32 (0, p, len));
}

/* Through a pipe, so nothing can depend on seeking. */
static void
test_zip_good (void)
{
  CLEANUP_FREE char *path = vb_path_join (dir, "good.zip");
  const size_t big = 5 * 1024 * 1024 + 3;
  CLEANUP_FREE unsigned char *data = malloc (big);
  char cmd[512], want[2048] = "";
  size_t off = 0;

  assert (data);
  fill (data, big, 11);
  snprintf (cmd, sizeof cmd, "cat > %s", path);
  FILE *pipe = popen (cmd, "w");
  assert (pipe);
  struct vb_target *t = vb_target_zip_open (fileno (pipe), NULL);
  assert (t && strcmp (t->ops->kind, "zip") == 0 && !t->ops->pwrite);
  struct vb_tfile *f = vb_target_create (t, "sda.full.data");
  assert (f);
  assert (vb_target_create (t, "sdb.full.data") == NULL);
  assert (strstr (vb_get_error (), "one file at a time"));
  for (size_t step = 40; off < big; step = step == 40 ? 1 << 20 : 40) {
    size_t n = off + step > big ? big - off : step;
    assert (vb_tfile_write (f, data + off, n) == 0);
    off += n;
  }
  assert (f->written == big && vb_tfile_commit (f) == 0);
  add_line (want, sizeof want, "sda.full.data", data, big);
  assert (vb_target_put (t, "vmconfig.virtback.0.xml", "<domain/>", 9) == 0);
  add_line (want, sizeof want, "vmconfig.virtback.0.xml", "<domain/>", 9);
  assert (vb_target_put (t, "checkpoints/virtback.0.xml", "<c/>", 4) == 0);
  add_line (want, sizeof want, "checkpoints/virtback.0.xml", "<c/>", 4);
  f = vb_target_create (t, "empty");
  assert (f && vb_tfile_commit (f) == 0);
  add_line (want, sizeof want, "empty", "", 0);
  assert (vb_target_create (t, "../x") == NULL);
  assert (vb_target_finish (t) == 0);
  assert (vb_target_finish (t) == 0);
  assert (vb_target_create (t, "late") == NULL);
  vb_target_close (t);
  assert (pclose (pipe) == 0);
  strcat (want, "exit=0\n");

  if (have_unzip)
    assert (run ("unzip -tq %s >/dev/null", path) == 0);
  if (have_python) {
    CLEANUP_FREE char *got = python_listing (path);
    if (strcmp (got, want) != 0) {
      fprintf (stderr, "zipfile said:\n%swanted:\n%s", got, want);
      abort ();
    }
    char cmd[4096];
    snprintf (cmd, sizeof cmd, "python3 -c '%s' %%s", pygolden);
    assert (run (cmd, path) == 0);
  }
}

/* An aborted entry fails the archive: nothing more can be added, and no
 * reader accepts the result. */
static void
test_zip_aborted (void)
{
  CLEANUP_FREE char *path = vb_path_join (dir, "bad.zip");
  int fd = open (path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);

  assert (fd >= 0);
  struct vb_target *t = vb_target_zip_open (fd, NULL);
  assert (t && strstr (t->where, "zip stream (fd"));
  assert (vb_target_put (t, "vmconfig.copy.xml", "<domain/>", 9) == 0);
  struct vb_tfile *f = vb_target_create (t, "sda.copy.data");
  assert (f && vb_tfile_write (f, "partial bytes", 13) == 0);
  vb_tfile_abort (f);
  assert (vb_target_create (t, "sdb.copy.data") == NULL);
  assert (strstr (vb_get_error (), "incomplete"));
  assert (vb_target_finish (t) == -1);
  assert (strstr (vb_get_error (), "incomplete"));
  vb_target_close (t);
  close (fd);
  if (have_unzip)
    assert (run ("unzip -tq %s >/dev/null 2>&1", path) != 0);
  if (have_python) {
    CLEANUP_FREE char *got = python_listing (path);
    assert (strstr (got, "BadZipFile") && !strstr (got, "exit=0"));
  }
}

/* Write errors are sticky and name the target. */
static void
test_zip_write_error (void)
{
  int fd = open ("/dev/full", O_WRONLY | O_CLOEXEC);
  CLEANUP_FREE char *buf = calloc (1, 3 << 20);

  if (fd < 0) {
    printf ("test-target: SKIP zip write error case: no /dev/full\n");
    return;
  }
  struct vb_target *t = vb_target_zip_open (fd, NULL);
  struct vb_tfile *f = vb_target_create (t, "sda.full.data");
  assert (f && buf);
  assert (vb_tfile_write (f, buf, 3 << 20) == -1);
  assert (strstr (vb_get_error (), "write: No space left on device "
                  "(target full)"));
  assert (f->error == ENOSPC);
  assert (vb_tfile_commit (f) == -1);
  assert (strstr (vb_get_error (), "(target full)"));
  assert (vb_target_finish (t) == -1);
  vb_target_close (t);
  close (fd);
}

/* Over 2 GiB the sizes and offsets move into zip64 fields.  This writes
 * 4 GiB, so it runs only when asked: VB_TEST_ZIP64=1. */
static void
test_zip64 (void)
{
  CLEANUP_FREE char *path = vb_path_join (dir, "big.zip");
  const size_t chunk = 8 << 20;
  const uint64_t total = (UINT64_C (4) << 30) + 12345;
  CLEANUP_FREE unsigned char *data = malloc (chunk);
  char want[512] = "";
  uLong crc = crc32 (0, NULL, 0);

  if (!getenv ("VB_TEST_ZIP64")) {
    printf ("test-target: SKIP zip64 case (writes 4 GiB; set "
            "VB_TEST_ZIP64=1)\n");
    return;
  }
  int fd = open (path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
  assert (fd >= 0 && data);
  fill (data, chunk, 5);
  struct vb_target *t = vb_target_zip_open (fd, NULL);
  struct vb_tfile *f = vb_target_create (t, "sda.full.data");
  for (uint64_t off = 0; off < total; off += chunk) {
    size_t n = total - off < chunk ? total - off : chunk;
    assert (vb_tfile_write (f, data, n) == 0);
    crc = crc32 (crc, data, n);
  }
  assert (vb_tfile_commit (f) == 0);
  assert (vb_target_put (t, "after", "x", 1) == 0);
  assert (vb_target_finish (t) == 0);
  vb_target_close (t);
  close (fd);
  snprintf (want, sizeof want, "sda.full.data %llu %08lx\n",
            (unsigned long long) total, crc);
  add_line (want, sizeof want, "after", "x", 1);
  strcat (want, "exit=0\n");
  if (have_unzip)
    assert (run ("unzip -tq %s >/dev/null", path) == 0);
  if (have_python) {
    CLEANUP_FREE char *got = python_listing (path);
    assert (strcmp (got, want) == 0);
  }
  unlink (path);
}

static void
test_zip (void)
{
  have_unzip = system ("unzip -v >/dev/null 2>&1") == 0;
  have_python = system ("python3 -c 1 >/dev/null 2>&1") == 0;
  if (!have_unzip)
    printf ("test-target: SKIP unzip checks: unzip not installed\n");
  if (!have_python)
    printf ("test-target: SKIP zipfile checks: python3 not installed\n");
  test_zip_good ();
  test_zip_aborted ();
  test_zip_write_error ();
  test_zip64 ();
}

/* The repository side of the directory backend: list, read, stat,
 * remove, rename into a subdirectory (as -l auto moves a chain aside),
 * and read handles shared by several threads. */
struct rarg {
  struct vb_rfile *rf;
  const char *want;
  size_t len;
  int bad;
};

static void *
rthread (void *p)
{
  struct rarg *a = p;
  char buf[64];

  for (int i = 0; i < 2000; i++) {
    size_t off = (size_t) (i * 7) % a->len, n = a->len - off < 13 ? a->len - off : 13;
    if (vb_rfile_pread (a->rf, buf, n, off) != (ssize_t) n ||
        memcmp (buf, a->want + off, n))
      a->bad++;
  }
  return NULL;
}

static void
test_repository (void)
{
  CLEANUP_FREE char *root = vb_path_join (dir, "repo");
  struct vb_target *t = vb_target_dir_open (root, NULL);
  struct vb_target_stat st;
  static const char text[] = "the quick brown fox jumps over the lazy dog";
  char **names;
  size_t len;

  assert (t);
  /* Not there yet: listing it fails (restore -i of a missing directory
   * must), and the first write makes it. */
  assert (!vb_target_list (t, NULL));
  assert (vb_target_put (t, "b.data", text, sizeof text - 1) == 0);
  assert (vb_target_put (t, "a.cpt", "[]", 2) == 0);
  assert (vb_target_mkdir (t, "checkpoints") == 0);
  assert (vb_target_put (t, "checkpoints/x.0.xml", "<x/>", 4) == 0);
  assert ((names = vb_target_list (t, NULL)));
  assert (!strcmp (names[0], "a.cpt") && !strcmp (names[1], "b.data") &&
          !strcmp (names[2], "checkpoints") && !names[3]);
  vb_strv_free (names);
  assert ((names = vb_target_list (t, "checkpoints")) &&
          !strcmp (names[0], "x.0.xml") && !names[1]);
  vb_strv_free (names);
  CLEANUP_FREE char *got = vb_target_read (t, "b.data", &len);
  assert (got && len == sizeof text - 1 && !strcmp (got, text));
  assert (!vb_target_read (t, "missing", NULL) && vb_get_errno () == ENOENT);
  assert (vb_target_stat (t, "b.data", &st) == 0 && st.exists && !st.is_dir &&
          st.size == sizeof text - 1);
  assert (vb_target_stat (t, "nope", &st) == 0 && !st.exists);
  assert (vb_target_stat (t, "checkpoints", &st) == 0 && st.is_dir);

  /* Several threads on one read handle. */
  struct vb_rfile *rf = vb_target_open_read (t, "b.data");
  pthread_t th[4];
  struct rarg a[4];
  assert (rf && rf->size == sizeof text - 1);
  for (int i = 0; i < 4; i++) {
    a[i] = (struct rarg) { rf, text, sizeof text - 1, 0 };
    assert (pthread_create (&th[i], NULL, rthread, &a[i]) == 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join (th[i], NULL);
    assert (a[i].bad == 0);
  }
  vb_rfile_close (rf);
  assert (!vb_target_open_read (t, "missing"));

  /* A chain set aside: into a subdirectory that does not exist yet. */
  assert (vb_target_rename (t, "b.data", "chain.1/b.data") == 0);
  assert (vb_target_stat (t, "b.data", &st) == 0 && !st.exists);
  assert (vb_target_stat (t, "chain.1/b.data", &st) == 0 && st.exists);
  assert (vb_target_remove (t, "chain.1/b.data") == 0);
  assert (vb_target_remove (t, "chain.1") == 0);
  assert (vb_target_remove (t, "chain.1") == 0);     /* gone: no error */
  assert (vb_target_stat (t, "chain.1", &st) == 0 && !st.exists);
  assert (vb_target_rename (t, "nope", "x") < 0);
  assert (!vb_target_read (t, "../escape", NULL));
  vb_target_close (t);

  /* stdout's zip can only write. */
  int fd = open ("/dev/null", O_WRONLY);
  struct vb_target *z = vb_target_zip_open (fd, NULL);
  assert (z && !vb_target_readable (z));
  assert (!vb_target_list (z, NULL) && strstr (vb_get_error (), "zip"));
  assert (!vb_target_open_read (z, "x"));
  vb_target_close (z);
  close (fd);
}

int
main (void)
{
  char cmd[128];

  assert (mkdtemp (dir));
  test_dir ();
  test_zip ();
  test_repository ();
  snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
  assert (system (cmd) == 0);
  printf ("test-target: ok\n");
  return 0;
}
