/* SPDX-License-Identifier: GPL-3.0-or-later */
/* test-serve: the request parsers of virtback serve and the ticket table. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/test.h"
#include "serve/internal.h"

static void
test_range (void)
{
  uint64_t off = 0, len = 0;

  CHECK (vb_srv_parse_range ("bytes=0-99", 1000, &off, &len) == VB_RANGE_OK
         && off == 0 && len == 100);
  CHECK (vb_srv_parse_range ("bytes=990-", 1000, &off, &len) == VB_RANGE_OK
         && off == 990 && len == 10);
  CHECK (vb_srv_parse_range ("bytes=10-999", 1000, &off, &len) == VB_RANGE_OK
         && len == 990);
  CHECK (vb_srv_parse_range ("bytes=10-1000", 1000, &off, &len)
         == VB_RANGE_UNSATISFIABLE);
  CHECK (vb_srv_parse_range ("bytes=1000-1001", 1000, &off, &len)
         == VB_RANGE_UNSATISFIABLE);
  CHECK (vb_srv_parse_range ("bytes=1000-", 1000, &off, &len)
         == VB_RANGE_UNSATISFIABLE);
  CHECK (vb_srv_parse_range ("bytes=5-4", 1000, &off, &len)
         == VB_RANGE_INVALID);
  CHECK (vb_srv_parse_range ("bytes=-10", 1000, &off, &len)
         == VB_RANGE_INVALID);
  CHECK (vb_srv_parse_range ("bytes=0-1,5-6", 1000, &off, &len)
         == VB_RANGE_INVALID);
  CHECK (vb_srv_parse_range ("items=0-1", 1000, &off, &len)
         == VB_RANGE_INVALID);
  CHECK (vb_srv_parse_range ("bytes=99999999999999999999-", 1000, &off, &len)
         == VB_RANGE_INVALID);
  CHECK (vb_srv_parse_range ("bytes=x-1", 1000, &off, &len)
         == VB_RANGE_INVALID);
}

static void
test_content_range (void)
{
  uint64_t off = 1;

  CHECK (vb_srv_parse_content_range ("bytes 0-99/*", &off) == 0 && off == 0);
  CHECK (vb_srv_parse_content_range ("bytes 100-199/1000", &off) == 0
         && off == 100);
  CHECK (vb_srv_parse_content_range ("bytes 5-*", &off) == 0 && off == 5);
  CHECK (vb_srv_parse_content_range ("bytes 9-3/*", &off) < 0);
  CHECK (vb_srv_parse_content_range ("bytes=0-1/*", &off) < 0);
  CHECK (vb_srv_parse_content_range ("bytes 0-1/x", &off) < 0);
  CHECK (vb_srv_parse_content_range ("bytes ", &off) < 0);
}

static void
test_patch (void)
{
  struct vb_patch p;
  const char *z = "{\"op\":\"zero\",\"offset\":4096,\"size\":8192,\"flush\":true}";

  CHECK (vb_srv_parse_patch (z, strlen (z), &p) == 0 && p.op == VB_PATCH_ZERO
         && p.off == 4096 && p.size == 8192 && p.flush);
  CHECK (vb_srv_parse_patch ("{\"op\":\"flush\"}", 14, &p) == 0
         && p.op == VB_PATCH_FLUSH);
  CHECK (vb_srv_parse_patch ("{\"op\":\"zero\"}", 13, &p) < 0);
  CHECK (vb_srv_parse_patch ("{\"op\":\"trim\"}", 13, &p) < 0);
  CHECK (vb_srv_parse_patch ("{\"op\":\"zero\",\"size\":-1}", 23, &p) < 0);
  CHECK (vb_srv_parse_patch ("{\"op\":\"zero\",\"size\":\"1\"}", 24, &p) < 0);
  CHECK (vb_srv_parse_patch ("{\"op\":", 6, &p) < 0);
  CHECK (vb_srv_parse_patch ("{\"op\":\"flush\"}x", 15, &p) < 0);
  CHECK (vb_srv_parse_patch ("[1]", 3, &p) < 0);
  /* Not NUL-terminated: only LEN bytes count. */
  CHECK (vb_srv_parse_patch ("{\"op\":\"flush\"}garbage", 14, &p) == 0);
}

static void
test_misc (void)
{
  uint64_t v;
  bool f;

  CHECK (vb_srv_valid_id ("6a1c0a4e-9b1d-4a5b-8c8e-1d2f3a4b5c6d"));
  CHECK (!vb_srv_valid_id (""));
  CHECK (!vb_srv_valid_id (".."));
  CHECK (!vb_srv_valid_id ("a/b"));
  CHECK (vb_srv_parse_block_size ("4194304", &v) == 0 && v == 4194304);
  CHECK (vb_srv_parse_block_size ("4095", &v) < 0);
  CHECK (vb_srv_parse_block_size ("1048576", &v) == 0 && v == 1048576);
  CHECK (vb_srv_parse_block_size ("1044480", &v) < 0);
  CHECK (vb_srv_parse_block_size ("33554432", &v) < 0);
  CHECK (vb_srv_parse_flush ("n", true, &f) == 0 && !f);
  CHECK (vb_srv_parse_flush (NULL, true, &f) == 0 && f);
  CHECK (vb_srv_parse_flush ("yes", true, &f) < 0);
  CHECK (vb_parse_content_length ("123", &v) == 0 && v == 123);
  CHECK (vb_parse_content_length ("1 2", &v) < 0);
}

/* A ticket JSON for file://PATH (PATH is a test directory's). */
static char *
file_ticket (const char *path)
{
  char *s;

  REQUIRE (asprintf (&s, "{\"uuid\":\"t1\",\"size\":1048576,\"url\":"
                     "\"file://%s\",\"timeout\":300,\"ops\":[\"read\"]}",
                     path) > 0);
  return s;
}

static void
test_tickets (void)
{
  struct vb_tickets *tt = vb_tickets_new ();
  char dir[] = "/tmp/test-serve.XXXXXX", *allow[] = { dir, NULL };
  char *ok, *out, *link_out, *path, *lpath;
  struct vb_ticket *t;

  REQUIRE (tt && mkdtemp (dir));
  REQUIRE (asprintf (&path, "%s/x", dir) > 0 && asprintf (&lpath, "%s/l", dir) > 0);
  REQUIRE (fclose (fopen (path, "w")) == 0 && symlink ("/etc/hostname", lpath) == 0);
  ok = file_ticket (path);
  out = file_ticket ("/etc/hostname");
  link_out = file_ticket (lpath);
  CHECK (vb_tickets_put (tt, "t1", ok, strlen (ok)) == -2);   /* no allowlist */
  REQUIRE (vb_tickets_allow_dirs (tt, allow) == 0);
  CHECK (vb_tickets_put (tt, "t1", ok, strlen (ok)) == 0);
  CHECK (vb_tickets_put (tt, "t1", out, strlen (out)) == -2);
  CHECK (vb_tickets_put (tt, "t1", link_out, strlen (link_out)) == -2);
  CHECK (vb_tickets_put (tt, "t2", ok, strlen (ok)) < 0);   /* uuid != ID */
  CHECK (vb_tickets_put (tt, "t1", "{}", 2) < 0);
  REQUIRE ((t = vb_tickets_get (tt, "t1")));
  CHECK (t->may_read && !t->may_write && t->kind == VB_URL_FILE);
  /* the daemon's defaults */
  CHECK (t->inactivity_timeout == VB_SERVE_INACTIVITY && t->nops == 1
         && !strcmp (t->transfer_id, "(ticket/t1)"));
  CHECK (vb_ticket_valid (t, vb_now ()));
  CHECK (vb_ticket_valid (t, vb_now () + 120));   /* idle: still valid */
  CHECK (!vb_ticket_valid (t, vb_now () + 301));
  vb_tickets_delete (tt, "t1");
  CHECK (!vb_ticket_valid (t, vb_now ()));   /* deleted while held */
  vb_ticket_unref (tt, t);
  CHECK (!vb_tickets_get (tt, "t1"));
  vb_tickets_delete (tt, "t1");
  const char *bad[] = {
    "{\"uuid\":\"t1\",\"size\":-1,\"url\":\"file:///x\",\"timeout\":1,\"ops\":[\"read\"]}",
    "{\"uuid\":\"t1\",\"size\":1,\"url\":\"file:///a/../b\",\"timeout\":1,\"ops\":[\"read\"]}",
    "{\"uuid\":\"t1\",\"size\":1,\"url\":\"http://x\",\"timeout\":1,\"ops\":[\"read\"]}",
    "{\"uuid\":\"t1\",\"size\":1,\"url\":\"file:///x\",\"timeout\":1,\"ops\":[\"rm\"]}",
    "{\"uuid\":\"t1\",\"size\":1,\"url\":\"nbd:unix:rel.sock\",\"timeout\":1,\"ops\":[\"read\"]}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK (vb_tickets_put (tt, "t1", bad[i], strlen (bad[i])) < 0);
  vb_tickets_free (tt);
  unlink (path);
  unlink (lpath);
  rmdir (dir);
  free (ok), free (out), free (link_out), free (path), free (lpath);
}

/* transferred: the union of the ranges, bounded in spans. */
static void
test_spans (void)
{
  struct vb_ticket t;
  uint64_t i;

  memset (&t, 0, sizeof t);
  vb_ticket_add_range (&t, 100, 100);
  vb_ticket_add_range (&t, 100, 100);
  CHECK (t.transferred == 100 && t.nspans == 1);
  vb_ticket_add_range (&t, 0, 50);
  vb_ticket_add_range (&t, 300, 10);
  CHECK (t.transferred == 160 && t.nspans == 3);
  vb_ticket_add_range (&t, 40, 270);   /* covers all three */
  CHECK (t.transferred == 310 && t.nspans == 1);
  vb_ticket_add_range (&t, 310, 5);    /* adjacent: merged */
  CHECK (t.transferred == 315 && t.nspans == 1);
  for (i = 0; i < 3000; i++)
    vb_ticket_add_range (&t, 1000 + i * 10, 1);
  CHECK (t.nspans <= 1024);
  CHECK (t.transferred >= 315 + 3000);
  free (t.spans);
}

int
main (void)
{
  test_range ();
  test_content_range ();
  test_patch ();
  test_misc ();
  test_tickets ();
  test_spans ();
  return vb_test_end ("test-serve");
}
