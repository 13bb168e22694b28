/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Unit tests for replica/: --to parsing, the ssh command line, the wire
 * over a real pipe, the apply's next step, and the journal's apply and
 * fold with the real qemu-img (redone after an interruption at each step,
 * they give the same image). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/proc.h"
#include "common/test.h"
#include "common/text.h"
#include "nbd/qemu_nbd.h"
#include "replica/internal.h"
#include "replica/replica.h"
#include "replica/ssh.h"

static void
test_parse_to (void)
{
  char *u, *h, *p, *d;

  CHECK (vb_replica_parse_to ("ssh://root@10.0.0.2:2202/var/standby/vm1",
                              &u, &h, &p, &d) == 0);
  CHECK_STR (u, "root");
  CHECK_STR (h, "10.0.0.2");
  CHECK_STR (p, "2202");
  CHECK_STR (d, "/var/standby/vm1");
  free (u); free (h); free (p); free (d);
  CHECK (vb_replica_parse_to ("ssh://host/d", &u, &h, &p, &d) == 0);
  CHECK (u == NULL && p == NULL);
  CHECK_STR (d, "/d");
  free (h); free (d);
  CHECK_ERR (vb_replica_parse_to ("http://host/d", &u, &h, &p, &d) < 0,
             "ssh://");
  CHECK_ERR (vb_replica_parse_to ("ssh://host/d;rm", &u, &h, &p, &d) < 0,
             "letters");
  CHECK_ERR (vb_replica_parse_to ("ssh://host/a/../b", &u, &h, &p, &d) < 0,
             "..");
}

static void
test_argv (void)
{
  CLEANUP_STRV char **v = vb_ssh_argv ("ssh -i '/k ey' -o A=b", "/opt/vb",
                                       "ssh://me@h:22/x", true);
  const char *want[] = { "ssh", "-i", "/k ey", "-o", "A=b", "-o",
                         "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
                         "-o", "BatchMode=yes", "-o", "ConnectTimeout=30", "-o",
                         "Compression=no", "-T", "-o",
                         "Ciphers=aes128-gcm@openssh.com,chacha20-poly1305@openssh.com,"
                         "aes256-gcm@openssh.com,aes128-ctr,aes256-ctr", "-p", "22", "-l", "me",
                         "--", "h", "/opt/vb replica receive /x", NULL };
  size_t i;

  REQUIRE (v);
  for (i = 0; want[i] && v[i]; i++)
    CHECK_STR (v[i], want[i]);
  CHECK (!want[i] && !v[i]);
  CHECK_ERR (vb_ssh_argv ("ssh $(id)", "virtback", "ssh://h/x", true) == NULL,
             "--rsh");
  CLEANUP_STRV char **w = vb_ssh_argv ("ssh", "virtback", "ssh://h/x", false);
  REQUIRE (w);
  for (i = 0; w[i]; i++)
    CHECK (strncmp (w[i], "Ciphers=", 8) != 0);
}

/* The real ssh's -G: a Ciphers line of the user's config (or -c) keeps
 * virtback's preference out; no config keeps it in. */
static void
test_config_ciphers (void)
{
  char dir[] = "/tmp/vb-test-ssh.XXXXXX";
  REQUIRE (mkdtemp (dir));
  CLEANUP_FREE char *cfg = vb_xasprintf ("%s/config", dir);
  CLEANUP_FREE char *empty = vb_xasprintf ("%s/empty", dir);
  CLEANUP_FREE char *with = vb_xasprintf ("ssh -F %s", cfg);
  CLEANUP_FREE char *without = vb_xasprintf ("ssh -F %s", empty);
  FILE *f = fopen (cfg, "w");

  REQUIRE (f && fputs ("Ciphers chacha20-poly1305@openssh.com\n", f) >= 0);
  fclose (f);
  REQUIRE ((f = fopen (empty, "w")));
  fclose (f);
  CHECK (vb_ssh_config_ciphers (with, "virtback", "ssh://me@h:22/x"));
  CHECK (!vb_ssh_config_ciphers (without, "virtback", "ssh://me@h:22/x"));
  CHECK (vb_ssh_config_ciphers ("ssh -c aes256-ctr", "virtback", "ssh://h/x"));
  CHECK (!vb_ssh_config_ciphers ("/bin/true", "virtback", "ssh://h/x"));
  unlink (cfg);
  unlink (empty);
  rmdir (dir);
}

static void
test_wire (void)
{
  int a[2], b[2];
  struct vb_wire s, r;
  char buf[5000];
  enum vb_frame_kind k;
  uint64_t st, len;

  REQUIRE (pipe (a) == 0 && pipe (b) == 0);
  REQUIRE (vb_wire_init (&s, b[0], a[1], "the receiver") == 0);
  REQUIRE (vb_wire_init (&r, a[0], b[1], "the sender") == 0);
  struct json_object *o = json_object_new_object ();
  json_object_object_add (o, "xml", json_object_new_string ("<a>\n</a>"));
  CHECK (vb_wire_send_json (&s, o) == 0);
  json_object_put (o);
  memset (buf, 'x', sizeof buf);
  CHECK (vb_wire_send_frame (&s, VB_FRAME_DATA, 4096, sizeof buf) == 0);
  CHECK (vb_wire_write (&s, buf, sizeof buf) == 0);
  o = json_object_new_object ();
  json_object_object_add (o, "error", json_object_new_string ("disk full"));
  CHECK (vb_wire_send_json (&s, o) == 0);
  json_object_put (o);

  o = vb_wire_recv_json (&r);
  CHECK_STR (vb_json_str (o, "xml"), "<a>\n</a>");
  json_object_put (o);
  CHECK (vb_wire_recv_frame (&r, &k, &st, &len) == 0);
  CHECK (k == VB_FRAME_DATA && st == 4096 && len == sizeof buf);
  memset (buf, 0, sizeof buf);
  CHECK (vb_wire_read (&r, buf, sizeof buf) == 0 && buf[4999] == 'x');
  CHECK_ERR (vb_wire_recv_json (&r) == NULL, "the sender: disk full");
  close (a[1]);
  CHECK_ERR (vb_wire_recv_json (&r) == NULL, "closed the connection");
  r.timeout_ms = 200;
  close (a[0]);
  vb_wire_free (&s);
  vb_wire_free (&r);
  close (b[0]);
  close (b[1]);
}

/* A piece larger than the read buffer goes past it, and a peer that
 * closed the wire while we send is heard: its last line says why. */
static void
test_wire_big (void)
{
  int a[2], b[2];
  struct vb_wire s, r;
  size_t big = 700u << 10;
  CLEANUP_FREE char *out = malloc (big), *in = malloc (big);
  struct json_object *o;
  enum vb_frame_kind k;
  uint64_t st, len;

  REQUIRE (out && in && pipe (a) == 0 && pipe (b) == 0);
  REQUIRE (vb_wire_init (&s, b[0], a[1], "the receiver") == 0);
  REQUIRE (vb_wire_init (&r, a[0], b[1], "the sender") == 0);
  for (size_t i = 0; i < big; i++)
    out[i] = (char) (i * 7 + i / 4093);
  /* more than a pipe holds: the sender is a child */
  pid_t pid = fork ();
  REQUIRE (pid >= 0);
  if (pid == 0)
    _exit (vb_wire_send_frame (&s, VB_FRAME_DATA, 0, big) < 0 ||
           vb_wire_write (&s, out, big) < 0 ||
           vb_wire_send_frame (&s, VB_FRAME_STOP, 0, 0) < 0);
  CHECK (vb_wire_recv_frame (&r, &k, &st, &len) == 0 && len == big);
  CHECK (vb_wire_read (&r, in, big) == 0 && !memcmp (in, out, big));
  CHECK (vb_wire_recv_frame (&r, &k, &st, &len) == 0 && k == VB_FRAME_STOP);
  int status = -1;
  CHECK (waitpid (pid, &status, 0) == pid && status == 0);
  signal (SIGPIPE, SIG_IGN);

  o = json_object_new_object ();
  json_object_object_add (o, "error", json_object_new_string ("disk full"));
  CHECK (vb_wire_send_json (&r, o) == 0);
  json_object_put (o);
  close (a[0]);
  CHECK_ERR (vb_wire_write (&s, out, 4096) < 0, "the receiver: disk full");
  vb_wire_free (&s);
  vb_wire_free (&r);
  close (a[1]);
  close (b[0]);
  close (b[1]);
}

/* BASE (if not NULL) of 1 MiB, and the overlay OV over it. */
static int
images (const char *base, const char *ov, const char *opts)
{
  if (base && vb_qemu_img_create (base, "qcow2", NULL, 1u << 20) < 0)
    return -1;
  return vb_qemu_img_create (ov, "qcow2", opts, 1u << 20);
}

static int
qemu_io (const char *img, const char *cmd)
{
  char *const argv[] = { "qemu-io", "-f", "qcow2", "-c", (char *) cmd,
                         (char *) img, NULL };
  return vb_proc_run (argv);
}

/* Every combination of the three files an incremental's apply moves. */
static void
test_apply_next (void)
{
  /* sync, base, top */
  CHECK (vb_apply_next (true, false, true) == VB_APPLY_BASE);
  CHECK (vb_apply_next (true, true, false) == VB_APPLY_TOP);
  CHECK (vb_apply_next (false, true, true) == VB_APPLY_DONE);
  CHECK (vb_apply_next (false, false, true) == VB_APPLY_DONE);
  CHECK (vb_apply_next (true, true, true) == VB_APPLY_BAD);
  CHECK (vb_apply_next (true, false, false) == VB_APPLY_BAD);
  CHECK (vb_apply_next (false, true, false) == VB_APPLY_BAD);
  CHECK (vb_apply_next (false, false, false) == VB_APPLY_BAD);
}

static int
run3 (const char *a, const char *b, const char *c, const char *d)
{
  char *const argv[] = { (char *) a, (char *) b, (char *) c, (char *) d,
                         NULL };
  return vb_proc_run (argv);
}

/* The point's data as qemu-io reads it through IMG's chain. */
static void
check_point (const char *img)
{
  CHECK (qemu_io (img, "read -P 0x22 512K 64K") == 0);
  CHECK (qemu_io (img, "read -P 0x11 0 512K") == 0);
  CHECK (qemu_io (img, "read -P 0x11 576K 448K") == 0);
}

static void
write_journal (const char *dir, const char *text)
{
  struct json_object *j = json_tokener_parse (text);
  REQUIRE (j);
  CHECK (vb_journal_write (dir, j) == 0);
  json_object_put (j);
}

#define APPLYING \
  "{\"state\":\"applying\",\"point\":\"virtback-replica.0\"," \
  "\"disks\":[{\"target\":\"sda\",\"size\":1048576}]," \
  "\"pending\":{\"point\":\"virtback-replica.1\",\"time\":7," \
  "\"mode\":\"chain\",\"disks\":[{\"target\":\"sda\",\"size\":1048576}]}}"

/* A sync in an overlay over the image (0x11, then 0x22 at 512K); STAGE
 * of the apply and fold done by hand, as an interrupted run leaves it. */
static void
apply_from (const char *dir, int stage)
{
  CLEANUP_FREE char *top = vb_replica_image (dir, "sda", "");
  CLEANUP_FREE char *base = vb_replica_image (dir, "sda", "base");
  CLEANUP_FREE char *ov = vb_replica_image (dir, "sda", "sync");
  CLEANUP_FREE char *opts = NULL;
  struct json_object *j;

  REQUIRE (asprintf (&opts, "backing_file=%s,backing_fmt=qcow2", top) > 0);
  unlink (top);
  REQUIRE (images (top, ov, opts) == 0);
  CHECK (qemu_io (top, "write -P 0x11 0 1M") == 0);
  CHECK (qemu_io (ov, "write -P 0x22 512K 64K") == 0);
  write_journal (dir, APPLYING);
  char *const rebase[] = { "qemu-img", "rebase", "-u", "-f", "qcow2", "-F",
                           "qcow2", "-b", "sda.base.qcow2", ov, NULL };
  if (stage >= 1)
    CHECK (vb_proc_run (rebase) == 0);
  if (stage >= 2)
    CHECK (rename (top, base) == 0);
  if (stage >= 3)
    CHECK (rename (ov, top) == 0);
  if (stage >= 4)        /* applied, the fold's commit done */
    CHECK (run3 ("qemu-img", "commit", "-d", top) == 0);
  if (stage >= 3)
    check_point (top);
  CHECK (vb_replica_apply (dir) == 0);
  CHECK (access (ov, F_OK) < 0 && access (base, F_OK) < 0);
  check_point (top);
  j = vb_journal_read (dir);
  CHECK_STR (vb_journal_state (j), "idle");
  CHECK_STR (vb_json_str (j, "point"), "virtback-replica.1");
  CHECK (vb_json_int (j, "time", 0) == 7);
  CHECK (json_object_object_get (j, "folding") == NULL);
  CHECK (vb_journal_fold_pending (dir, j) == 0);
  json_object_put (j);
}

/* Applied and folded by `replica apply` from every point an interrupted
 * apply or fold stops at; a chain after a failover is never folded; an
 * interrupted receive is dropped, the image untouched. */
static void
test_apply (void)
{
  char dir[] = "/tmp/test-replica.XXXXXX";
  REQUIRE (mkdtemp (dir));
  CLEANUP_FREE char *top = vb_replica_image (dir, "sda", "");
  CLEANUP_FREE char *base = vb_replica_image (dir, "sda", "base");
  CLEANUP_FREE char *ov = vb_replica_image (dir, "sda", "sync");
  CLEANUP_FREE char *opts = NULL;
  struct json_object *j;

  for (int stage = 0; stage <= 4; stage++)
    apply_from (dir, stage);
  /* applied into a chain, then failed over: the fold stays undone */
  REQUIRE (rename (top, base) == 0 &&
           images (NULL, top, "backing_file=sda.base.qcow2,"
                   "backing_fmt=qcow2") == 0);
  write_journal (dir, "{\"state\":\"failed-over\",\"point\":\"virtback-replica.1\","
                 "\"disks\":[{\"target\":\"sda\",\"size\":1048576}]}");
  j = vb_journal_read (dir);
  CHECK (vb_journal_fold_pending (dir, j) == 1);
  CHECK (vb_journal_fold (dir, j) == 0);
  CHECK (access (base, F_OK) == 0);
  json_object_put (j);
  REQUIRE (rename (base, top) == 0);
  /* an interrupted receive */
  REQUIRE (asprintf (&opts, "backing_file=%s,backing_fmt=qcow2", top) > 0);
  CHECK (images (NULL, ov, opts) == 0);
  write_journal (dir, "{\"state\":\"receiving\",\"point\":\"virtback-replica.1\","
                 "\"pending\":{\"point\":\"virtback-replica.2\",\"mode\":\"chain\","
                 "\"disks\":[{\"target\":\"sda\",\"size\":1048576}]}}");
  CHECK (vb_replica_apply (dir) == 0);
  CHECK (access (ov, F_OK) < 0);
  j = vb_journal_read (dir);
  CHECK_STR (vb_journal_state (j), "idle");
  CHECK_STR (vb_json_str (j, "point"), "virtback-replica.1");
  json_object_put (j);
  char *const rm[] = { "rm", "-rf", dir, NULL };
  vb_proc_run (rm);
}

int
main (void)
{
  test_parse_to ();
  test_argv ();
  test_config_ciphers ();
  test_wire ();
  test_wire_big ();
  test_apply_next ();
  test_apply ();
  return vb_test_end ("test-replica");
}
