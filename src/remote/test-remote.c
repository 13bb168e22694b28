/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Unit tests for remote/remote.h: the local/remote decision from the URI
 * alone, the ssh command line, and the quoting, run for real through a
 * ?command= wrapper that plays ssh by running the command in sh here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/test.h"
#include "remote/remote.h"

static void
test_parse (void)
{
  struct vb_remote r;

  CHECK (vb_remote_parse ("qemu:///system", &r) == 0 && !r.host);
  CHECK (vb_remote_parse (NULL, &r) == 0);
  CHECK (vb_remote_parse ("qemu+unix:///system?socket=/x", &r) == 0);
  /* the URI decides, never the name: localhost is remote too */
  REQUIRE (vb_remote_parse ("qemu+ssh://localhost/system", &r) == 1);
  CHECK (r.ssh && !strcmp (r.host, "localhost") && !r.user && !r.port);
  vb_remote_clear (&r);
  REQUIRE (vb_remote_parse ("qemu+ssh://root@10.0.0.2:2201/system?keyfile="
                            "/k%20ey&no_verify=1&command=/w", &r) == 1);
  CHECK (!strcmp (r.user, "root") && r.port == 2201);
  CHECK (!strcmp (r.keyfile, "/k ey") && !strcmp (r.command, "/w"));
  CHECK (r.no_verify && r.timeout == VB_REMOTE_TIMEOUT);
  vb_remote_clear (&r);
  REQUIRE (vb_remote_parse ("qemu+tcp://h1/system", &r) == 1);
  CHECK (!r.ssh);
  vb_remote_clear (&r);
  CHECK (vb_remote_parse ("qemu+ssh://-oProxyCommand=x/system", &r) == -1);
}

static void
test_argv (void)
{
  struct vb_remote r;
  CLEANUP_STRV char **v = NULL;
  const char *w[] = { "a b", "it's", "$x", NULL };
  CLEANUP_FREE char *j = vb_shell_join (w);

  REQUIRE (j && !strcmp (j, "'a b' 'it'\\''s' '$x'"));
  REQUIRE (vb_remote_parse ("qemu+ssh://u@h:22/system?keyfile=/k", &r) == 1);
  r.timeout = 20;
  REQUIRE ((v = vb_remote_ssh_argv (&r, "cmd")));
  CHECK (!strcmp (v[0], "ssh") && !strcmp (v[1], "-p") &&
         !strcmp (v[2], "22") && !strcmp (v[3], "-l") &&
         !strcmp (v[4], "u") && !strcmp (v[5], "-i") && !strcmp (v[6], "/k"));
  size_t n = 0;
  while (v[n])
    n++;
  CHECK (n > 2 && !strcmp (v[n - 2], "h") && !strcmp (v[n - 1], "cmd"));
  bool alive = false;
  for (size_t i = 0; v[i]; i++)
    alive |= !strcmp (v[i], "ServerAliveInterval=5");
  CHECK (alive);
  vb_remote_clear (&r);
}

/* A wrapper in place of ssh: runs its last argument in sh, as sshd's
 * shell would. */
static void
test_run (void)
{
  char dir[] = "/tmp/test-remote.XXXXXX";
  CLEANUP_FREE char *wrap = NULL, *uri = NULL, *out = NULL, *file = NULL;
  struct vb_remote r;
  FILE *fp;

  REQUIRE (mkdtemp (dir));
  REQUIRE (asprintf (&wrap, "%s/ssh", dir) > 0);
  REQUIRE ((fp = fopen (wrap, "w")));
  fputs ("#!/bin/sh\nfor a; do last=$a; done\nexec sh -c \"$last\"\n", fp);
  fclose (fp);
  chmod (wrap, 0700);
  REQUIRE (asprintf (&uri, "qemu+ssh://h/system?command=%s", wrap) > 0);
  REQUIRE (vb_remote_parse (uri, &r) == 1);
  const char *echo[] = { "printf", "%s|", "a b", "it's", "$HOME", NULL };
  REQUIRE ((out = vb_remote_output (&r, echo, NULL)));
  CHECK (!strcmp (out, "a b|it's|$HOME|"));
  REQUIRE (asprintf (&file, "%s/x y.xml", dir) > 0);
  CHECK (vb_remote_put (&r, file, "<a b='c'/>", 10) == 0);
  CHECK (vb_remote_exists (&r, file) == 1);
  CLEANUP_FREE char *got = NULL;
  REQUIRE ((fp = fopen (file, "r")));
  char buf[64] = "";
  CHECK (fgets (buf, sizeof buf, fp) && !strcmp (buf, "<a b='c'/>"));
  fclose (fp);
  CHECK (vb_remote_unlink (&r, file) == 0 && vb_remote_exists (&r, file) == 0);
  const char *fail[] = { "sh", "-c", "echo no such thing >&2; exit 3", NULL };
  CHECK (vb_remote_output (&r, fail, NULL) == NULL &&
         strstr (vb_get_error (), "host h") &&
         strstr (vb_get_error (), "no such thing"));
  vb_remote_clear (&r);
  unlink (wrap);
  rmdir (dir);
}

int
main (void)
{
  test_parse ();
  test_argv ();
  test_run ();
  return vb_test_end ("test-remote");
}
