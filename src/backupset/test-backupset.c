/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Unit tests for backupset.c: file naming, the .cpt chain file (exact
 * bytes, as Python's json.dumps writes them), saved checkpoints, directory
 * scans and the per-domain lock; and chain.c's whole-file check. */
#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backupset/backupset.h"
#include "backupset/chain.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "target/target.h"
#include "common/fsutil.h"

#include "target/test-util.h"

static char dir[] = "/tmp/vbtest-set.XXXXXX";

static void
expect_str (char *got, const char *want)
{
  if (!got || strcmp (got, want) != 0) {
    fprintf (stderr, "expected '%s', got '%s' (%s)\n", want,
             got ? got : "NULL", vb_get_error ());
    abort ();
  }
  free (got);
}

static void
touch (const char *name, const char *content)
{
  assert (vb_write_file_atomic (dir, name, content, strlen (content),
                                0600) == 0);
}

/* <domain>.cpt as a backup writes it (vb_cpt_format's bytes). */
static void
write_cpt (const char *domain, char *const *names)
{
  CLEANUP_FREE char *name = vb_bset_cpt_name (domain);
  CLEANUP_FREE char *text = vb_cpt_format (names);

  assert (name && text);
  touch (name, text);
}

static void
test_names (void)
{
  expect_str (vb_bset_data_name ("sda", VB_LEVEL_FULL, NULL), "sda.full.data");
  expect_str (vb_bset_data_name ("sda", VB_LEVEL_COPY, "x"), "sda.copy.data");
  expect_str (vb_bset_data_name ("vdb", VB_LEVEL_INC, "virtback.3"),
              "vdb.inc.virtback.3.data");
  expect_str (vb_bset_data_name ("sda", VB_LEVEL_DIFF, "1700000000"),
              "sda.diff.1700000000.data");
  assert (vb_bset_data_name ("sda", VB_LEVEL_AUTO, NULL) == NULL);
  assert (strstr (vb_get_error (), "auto"));
  assert (vb_bset_data_name ("sda", VB_LEVEL_INC, NULL) == NULL);
  assert (vb_bset_data_name ("sda", VB_LEVEL_INC, "../x") == NULL);
  assert (vb_bset_data_name ("a/b", VB_LEVEL_FULL, NULL) == NULL);
  assert (strstr (vb_get_error (), "a/b"));

  expect_str (vb_bset_ident (VB_LEVEL_COPY, "virtback.0"), "copy");
  expect_str (vb_bset_ident (VB_LEVEL_FULL, "virtback.0"), "virtback.0");
  expect_str (vb_bset_ident (VB_LEVEL_INC, "virtback.4"), "virtback.4");
  time_t before = time (NULL);
  CLEANUP_FREE char *d = vb_bset_ident (VB_LEVEL_DIFF, "virtback.4");
  assert (d && strspn (d, "0123456789") == strlen (d));
  assert (atoll (d) >= before && atoll (d) <= time (NULL));
  CLEANUP_FREE char *e = vb_bset_ident (VB_LEVEL_FULL, NULL);
  assert (e && strspn (e, "0123456789") == strlen (e) && atoll (e) >= before);

  expect_str (vb_bset_vmconfig_name ("virtback.0"), "vmconfig.virtback.0.xml");
  expect_str (vb_bset_vmconfig_name ("copy"), "vmconfig.copy.xml");
  expect_str (vb_bset_qcow_json_name ("sda", "virtback.1"),
              "sda.virtback.1.qcow.json");
  expect_str (vb_bset_cpt_name ("vm1"), "vm1.cpt");
  assert (vb_bset_cpt_name ("..") == NULL);

  setenv ("TZ", "UTC", 1);
  tzset ();
  expect_str (vb_bset_log_name (VB_LEVEL_INC, 1700000000),
              "backup.inc.11142023221320.log");
  expect_str (vb_bset_log_name (VB_LEVEL_FULL, 0),
              "backup.full.01011970000000.log");
}

static void
test_levels (void)
{
  enum vb_level l;
  const char *names[] = { "copy", "full", "inc", "diff", "auto" };
  const enum vb_level want[] = { VB_LEVEL_COPY, VB_LEVEL_FULL, VB_LEVEL_INC,
                                 VB_LEVEL_DIFF, VB_LEVEL_AUTO };

  for (size_t i = 0; i < 5; i++) {
    assert (vb_level_parse (names[i], &l) == 0 && l == want[i]);
    assert (strcmp (vb_level_name (l), names[i]) == 0);
  }
  assert (vb_level_parse ("Full", &l) == -1);
  assert (strstr (vb_get_error (), "Full"));
}

static void
test_safe (void)
{
  assert (vb_bset_safe_component ("sda"));
  assert (vb_bset_safe_component ("virtback.0"));
  assert (vb_bset_safe_component ("...")); /* odd but one component */
  assert (!vb_bset_safe_component (".."));
  assert (!vb_bset_safe_component ("."));
  assert (!vb_bset_safe_component ("a/b"));
  assert (!vb_bset_safe_component ("/sda"));
  assert (!vb_bset_safe_component (""));
  assert (!vb_bset_safe_component (NULL));
}

static void
test_cpt (void)
{
  char *chain[] = { "virtback.0", "virtback.1", NULL };
  char *empty[] = { NULL };
  CLEANUP_FREE char *path = vb_path_join (dir, "vm1.cpt");
  size_t len;

  /* A missing file is an empty chain. */
  CLEANUP_STRV char **none = vb_cpt_read (T (dir), "vm1");
  assert (none && none[0] == NULL && vb_strv_len (none) == 0);

  write_cpt ("vm1", chain);
  CLEANUP_FREE char *bytes = vb_read_file (path, &len);
  assert (bytes && strcmp (bytes, "[\"virtback.0\", \"virtback.1\"]") == 0);
  assert (len == 28);
  CLEANUP_STRV char **back = vb_cpt_read (T (dir), "vm1");
  assert (back && vb_strv_len (back) == 2);
  assert (strcmp (back[0], "virtback.0") == 0);
  assert (strcmp (back[1], "virtback.1") == 0);

  write_cpt ("vm1", empty);
  CLEANUP_FREE char *eb = vb_read_file (path, NULL);
  assert (eb && strcmp (eb, "[]") == 0);

  /* Golden bytes from python3 -c 'json.dumps([...])'. */
  char *odd[] = { "a\"b\\c\n\x7f\x01 \xc3\xa9 \xf0\x9f\x98\x80", "virtback.0",
                  NULL };
  expect_str (vb_cpt_format (odd),
              "[\"a\\\"b\\\\c\\n\\u007f\\u0001 \\u00e9 \\ud83d\\ude00\", "
              "\"virtback.0\"]");
  char *bad[] = { "\xc3", NULL };
  assert (vb_cpt_format (bad) == NULL);
}

static void
test_cpt_invalid (void)
{
  /* What virtnbdbackup writes reads back; anything else is an error that
   * names the file. */
  touch ("py.cpt", "[\"virtnbdbackup.0\", \"virtnbdbackup.1\"]");
  CLEANUP_STRV char **py = vb_cpt_read (T (dir), "py");
  assert (py && vb_strv_len (py) == 2);
  assert (strcmp (py[1], "virtnbdbackup.1") == 0);

  const char *bad[] = { "[\"a\", ", "{\"a\": 1}", "[1]", "[\"../etc\"]",
                        "[\"a/b\"]", "" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    touch ("bad.cpt", bad[i]);
    assert (vb_cpt_read (T (dir), "bad") == NULL);
    assert (strstr (vb_get_error (), "bad.cpt"));
  }
  CLEANUP_FREE char *bad_path = vb_path_join (dir, "bad.cpt");
  unlink (bad_path);
}

static void
test_checkpoints (void)
{
  CLEANUP_FREE char *cptdir = vb_path_join (dir, "checkpoints");
  CLEANUP_FREE char *file = vb_path_join (cptdir, "virtback.0.xml");
  struct stat st;

  assert (vb_bset_remove_checkpoints (T (cptdir)) == 0); /* missing: fine */
  assert (vb_bset_save_checkpoint (T (cptdir), "virtback.0", "<a/>") == 0);
  assert (vb_bset_save_checkpoint (T (cptdir), "virtback.1", "<b/>") == 0);
  assert (stat (cptdir, &st) == 0 && (st.st_mode & 0777) == 0700);
  assert (stat (file, &st) == 0 && (st.st_mode & 0777) == 0600);
  expect_str (vb_bset_load_checkpoint (T (cptdir), "virtback.1"), "<b/>");
  assert (vb_bset_load_checkpoint (T (cptdir), "virtback.9") == NULL);
  assert (strstr (vb_get_error (), "virtback.9.xml"));
  assert (vb_bset_save_checkpoint (T (cptdir), "../evil", "x") == -1);
  assert (vb_bset_remove_checkpoints (T (cptdir)) == 0);
  assert (vb_dir_is_empty (cptdir) == 1);
}

static void
test_scan (void)
{
  CLEANUP_FREE char *sub = vb_path_join (dir, "scan");

  assert (vb_bset_has_backup (T (sub), "vm1") == 0); /* missing directory */
  assert (vb_mkdir_p (sub, 0700) == 0);
  assert (vb_bset_has_backup (T (sub), "vm1") == 0);
  assert (vb_write_file_atomic (sub, "sda.full.data.partial", "x", 1,
                                0600) == 0);
  assert (vb_write_file_atomic (sub, "vmconfig.virtback.0.xml", "x", 1,
                                0600) == 0);
  assert (vb_bset_has_backup (T (sub), "vm1") == 0);
  assert (vb_write_file_atomic (sub, "vm1.cpt", "[]", 2, 0600) == 0);
  assert (vb_bset_has_backup (T (sub), "vm1") == 1);
  assert (vb_bset_has_backup (T (sub), "vm2") == 0);
  assert (vb_write_file_atomic (sub, "sda.inc.virtback.1.data", "x", 1,
                                0600) == 0);
  assert (vb_bset_has_backup (T (sub), "vm2") == 1);

  assert (vb_write_file_atomic (sub, "sdb.copy.data.partial", "x", 1,
                                0600) == 0);
  assert (vb_bset_remove_partials (T (sub)) == 2);
  assert (vb_bset_remove_partials (T (sub)) == 0);
  CLEANUP_FREE char *kept = vb_path_join (sub, "sda.inc.virtback.1.data");
  assert (access (kept, F_OK) == 0);
}

/* Two open file descriptions in one process conflict like two runs do; a
 * holder killed with SIGKILL leaves no stale lock. */
static void
test_lock (void)
{
  char uuid[64];
  int pfd[2];
  struct vb_tlock *l1, *l2;
  struct vb_target *lt = T (dir);
  char c;

  snprintf (uuid, sizeof uuid, "vbtest-%d-%ld", (int) getpid (),
            (long) time (NULL));
  if (vb_mkdir_p ("/run/virtback", 0700) < 0 || access ("/run/virtback",
                                                         W_OK) < 0) {
    printf ("test-backupset: skipping lock test: /run/virtback not "
            "writable (%s)\n", vb_get_error ());
    return;
  }
  l1 = vb_target_lock (lt, uuid, "vm1");
  assert (l1);
  assert (vb_target_lock (lt, uuid, "vm1") == NULL);
  assert (strstr (vb_get_error (),
                  "another virtback run is using domain 'vm1' "
                  "(lock /run/virtback/vbtest-"));
  vb_target_unlock (l1);
  l2 = vb_target_lock (lt, uuid, "vm1");
  assert (l2);
  vb_target_unlock (l2);

  assert (pipe (pfd) == 0);
  pid_t pid = fork ();
  assert (pid >= 0);
  if (pid == 0) {
    struct vb_tlock *l = vb_target_lock (lt, uuid, "vm1");
    if (write (pfd[1], l ? "y" : "n", 1) != 1)
      _exit (1);
    pause ();
    _exit (0);
  }
  assert (read (pfd[0], &c, 1) == 1 && c == 'y');
  assert (vb_target_lock (lt, uuid, "vm1") == NULL);
  kill (pid, SIGKILL);
  assert (waitpid (pid, NULL, 0) == pid);
  l2 = vb_target_lock (lt, uuid, "vm1");
  assert (l2);
  vb_target_unlock (l2);
  close (pfd[0]);
  close (pfd[1]);
  assert (vb_target_lock (lt, "a/b", "vm1") == NULL);

  char path[128];
  snprintf (path, sizeof path, "/run/virtback/%s.lock", uuid);
  unlink (path);
}

/* The lock file goes with the run; only the holder removes it, and only
 * the file it holds; a query neither creates the file nor takes the lock. */
static void
test_unlock (void)
{
  CLEANUP_FREE char *ldir = vb_path_join (dir, "locks");
  CLEANUP_FREE char *path = vb_path_join (ldir, "u1.lock");
  CLEANUP_FREE char *other = vb_path_join (ldir, "other");
  struct stat st;
  struct vb_tlock *l;
  struct vb_target *lt = T (dir);
  int old;

  vb_target_lock_dir (ldir);
  assert (vb_target_locked (lt, "u1") == 0);
  assert (stat (path, &st) == -1 && errno == ENOENT);
  l = vb_target_lock (lt, "u1", "vm1");
  assert (l && stat (path, &st) == 0);
  assert (vb_target_locked (lt, "u1") == 1);
  assert (vb_target_lock (lt, "u1", "vm1") == NULL);
  vb_target_unlock (l);
  assert (stat (path, &st) == -1 && errno == ENOENT);
  assert (vb_target_locked (lt, "u1") == 0);

  /* A second run opened the file before the first removed it: its lock
   * is on a file no longer at the path, so a new run is not shut out by
   * it, and the stale holder's unlock leaves the new file alone. */
  l = vb_target_lock (lt, "u1", "vm1");
  old = open (path, O_RDWR | O_CLOEXEC);
  assert (l && old >= 0);
  vb_target_unlock (l);
  assert (flock (old, LOCK_EX | LOCK_NB) == 0);
  l = vb_target_lock (lt, "u1", "vm1");
  assert (l);
  assert (vb_target_locked (lt, "u1") == 1);
  close (old);             /* the stale holder goes */
  assert (stat (path, &st) == 0);
  assert (vb_target_locked (lt, "u1") == 1);

  /* Replaced under a holder (say by hand): its unlock removes nothing. */
  assert (vb_write_file_atomic (ldir, "other", "", 0, 0600) == 0);
  assert (rename (other, path) == 0);
  vb_target_unlock (l);
  assert (stat (path, &st) == 0);
  assert (vb_target_locked (lt, "u1") == 0);
  unlink (path);
  rmdir (ldir);
  vb_target_unlock (NULL);
  vb_target_lock_dir (NULL);
}

/* Runs that end remove the lock file while others wait on it: whoever
 * gets a lock on the removed file must not count as its holder.  Four
 * processes take and drop one lock in turns; a shared count of holders
 * must never pass one. */
static void
lock_turns (struct vb_target *lt, int *inside, int rounds)
{
  for (int i = 0; i < rounds; i++) {
    struct vb_tlock *l = vb_target_lock (lt, "race", "vm1");
    if (!l)
      continue;                 /* busy for half a second: try again */
    if (__atomic_add_fetch (inside, 1, __ATOMIC_SEQ_CST) != 1)
      _exit (3);
    sched_yield ();
    __atomic_sub_fetch (inside, 1, __ATOMIC_SEQ_CST);
    vb_target_unlock (l);
  }
  _exit (0);
}

static void
test_lock_race (void)
{
  CLEANUP_FREE char *ldir = vb_path_join (dir, "racelocks");
  struct vb_target *lt = T (dir);
  int *inside = mmap (NULL, sizeof *inside, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  pid_t pids[4];
  int status;

  assert (inside != MAP_FAILED);
  *inside = 0;
  vb_target_lock_dir (ldir);
  for (int i = 0; i < 4; i++) {
    pids[i] = fork ();
    assert (pids[i] >= 0);
    if (pids[i] == 0)
      lock_turns (lt, inside, 3000);
  }
  for (int i = 0; i < 4; i++) {
    assert (waitpid (pids[i], &status, 0) == pids[i]);
    assert (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  }
  vb_target_lock_dir (NULL);
  munmap (inside, sizeof *inside);
}

/* sda.full.data: meta, one 4 KiB data frame, a zero frame, stop; then
 * its check after cutting CUT bytes off the end or adding junk. */
static int
check_cut (off_t cut, const char *junk)
{
  struct vb_meta m = {
    .virtual_size = 1 << 20, .data_size = 4096, .date = "2026-11-22T01:31:23",
    .disk_name = "sda", .disk_format = "qcow2", .checkpoint_name = "p.0",
    .parent_checkpoint = "", .compression_method = "lz4",
    .stream_version = 2,
  };
  size_t len, n = 0;
  CLEANUP_FREE char *json = vb_meta_to_json (&m, &len);
  CLEANUP_FREE char *buf = malloc (len + 4 * VB_FRAME_LEN + 4096 + 4 + 16);
  char path[128];
  struct vb_chain *c;
  int r;

  assert (json && buf);
  vb_frame_format (buf, VB_FRAME_META, 0, len);
  memcpy (buf + VB_FRAME_LEN, json, len);
  n = VB_FRAME_LEN + len;
  memcpy (buf + n, "\r\n", 2), n += 2;
  vb_frame_format (buf + n, VB_FRAME_DATA, 0, 4096), n += VB_FRAME_LEN;
  memset (buf + n, 0x5a, 4096), n += 4096;
  memcpy (buf + n, "\r\n", 2), n += 2;
  vb_frame_format (buf + n, VB_FRAME_ZERO, 4096, 4096), n += VB_FRAME_LEN;
  vb_frame_format (buf + n, VB_FRAME_STOP, 0, 0), n += VB_FRAME_LEN;
  memcpy (buf + n, junk, strlen (junk)), n += strlen (junk);
  assert (vb_write_file_atomic (dir, "sda.full.data", buf, n - cut,
                                0600) == 0);
  assert ((c = vb_chain_scan (T (dir))) && c->nall == 1);
  r = vb_chain_file_check (c, &c->all[0]);
  assert (r == 0 || strstr (vb_get_error (), "sda.full.data"));
  vb_chain_free (c);
  snprintf (path, sizeof path, "%s/sda.full.data", dir);
  unlink (path);
  return r;
}

/* Truncation shows whatever part of the file it takes: a payload, a frame
 * header, the stop frame; so do bytes after the stop frame. */
static void
test_file_check (void)
{
  assert (check_cut (0, "") == 0);
  for (off_t cut = 1; cut <= 2 * VB_FRAME_LEN + 2 + 4096; cut += 7)
    assert (check_cut (cut, "") == -1);
  assert (check_cut (0, "x") == -1);
}

int
main (void)
{
  char cmd[128];

  assert (mkdtemp (dir));
  test_names ();
  test_levels ();
  test_safe ();
  test_cpt ();
  test_cpt_invalid ();
  test_checkpoints ();
  test_scan ();
  test_lock ();
  test_unlock ();
  test_lock_race ();
  test_file_check ();
  snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
  assert (system (cmd) == 0);
  printf ("test-backupset: ok\n");
  return 0;
}
