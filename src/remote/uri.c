/* SPDX-License-Identifier: GPL-3.0-or-later */
/* uri.c: which host a libvirt URI names, and the ssh command line that
 * reaches it the way libvirt's ssh transport does. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/uri.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "remote/remote.h"

static void
free_uri (xmlURIPtr *u)
{
  if (*u)
    xmlFreeURI (*u);
}
#define CLEANUP_URI __attribute__((cleanup (free_uri)))

/* One "name=value" of the URI's query (libxml2 splits the URI, libvirt's
 * parameters are &-separated). */
static int
query_param (struct vb_remote *r, const char *kv, size_t len)
{
  const char *eq = memchr (kv, '=', len);
  size_t klen = eq ? (size_t) (eq - kv) : len;
  CLEANUP_FREE char *val = eq ? xmlURIUnescapeString (eq + 1,
                                                      len - klen - 1, NULL)
                              : strdup ("");
  char **slot = NULL;

  if (!val)
    return -1;
  if (klen == 7 && !strncmp (kv, "keyfile", 7))
    slot = &r->keyfile;
  else if (klen == 7 && !strncmp (kv, "command", 7))
    slot = &r->command;
  else if (klen == 9 && !strncmp (kv, "no_verify", 9))
    r->no_verify = strcmp (val, "0") != 0;
  if (slot) {
    free (*slot);
    *slot = STEAL (val);
  }
  return 0;
}

static int
parse_query (struct vb_remote *r, const char *q)
{
  while (q && *q) {
    size_t n = strcspn (q, "&");
    if (query_param (r, q, n) < 0)
      return -1;
    q += n + (q[n] == '&');
  }
  return 0;
}

int
vb_remote_parse (const char *uri, struct vb_remote *r)
{
  CLEANUP_URI xmlURIPtr u = NULL;
  const char *plus;

  memset (r, 0, sizeof *r);
  r->timeout = VB_REMOTE_TIMEOUT;
  if (!uri)
    return 0;
  if (!(u = xmlParseURI (uri)) || !u->scheme) {
    vb_set_error ("libvirt URI '%s' does not parse: give one such as "
                  "qemu+ssh://root@host/system", uri);
    return -1;
  }
  if (!u->server || !*u->server)
    return 0;
  /* ssh would take it for an option. */
  if (u->server[0] == '-') {
    vb_set_error ("libvirt URI '%s': the host name starts with '-'", uri);
    return -1;
  }
  plus = strchr (u->scheme, '+');
  r->ssh = plus && !strcmp (plus + 1, "ssh");
  r->port = u->port > 0 ? u->port : 0;
  if (!(r->host = strdup (u->server)) ||
      (u->user && !(r->user = strdup (u->user))) ||
      parse_query (r, u->query_raw) < 0) {
    vb_remote_clear (r);
    vb_set_error ("out of memory");
    return -1;
  }
  return 1;
}

void
vb_remote_clear (struct vb_remote *r)
{
  vb_remote_session_end (r);
  free (r->host);
  free (r->user);
  free (r->keyfile);
  free (r->command);
  memset (r, 0, sizeof *r);
}

struct vb_remote *
vb_remote_dup (const struct vb_remote *r)
{
  struct vb_remote *c = calloc (1, sizeof *c);

  if (c) {
    *c = *r;
    c->control = NULL;
    c->master = 0;
    c->host = r->host ? strdup (r->host) : NULL;
    c->user = r->user ? strdup (r->user) : NULL;
    c->keyfile = r->keyfile ? strdup (r->keyfile) : NULL;
    c->command = r->command ? strdup (r->command) : NULL;
  }
  if (!c || !c->host || (r->user && !c->user) ||
      (r->keyfile && !c->keyfile) || (r->command && !c->command)) {
    vb_remote_free (c);
    vb_set_error ("out of memory");
    return NULL;
  }
  return c;
}

void
vb_remote_free (struct vb_remote *r)
{
  if (r) {
    vb_remote_clear (r);
    free (r);
  }
}

/* 'word', with each ' written as '\'' */
static void
quote (FILE *fp, const char *w)
{
  fputc ('\'', fp);
  for (; *w; w++)
    if (*w == '\'')
      fputs ("'\\''", fp);
    else
      fputc (*w, fp);
  fputc ('\'', fp);
}

char *
vb_shell_join (const char *const *argv)
{
  char *s = NULL;
  size_t len;
  FILE *fp = open_memstream (&s, &len);

  if (!fp) {
    vb_set_error ("out of memory");
    return NULL;
  }
  for (const char *const *a = argv; *a; a++) {
    if (a != argv)
      fputc (' ', fp);
    quote (fp, *a);
  }
  if (fclose (fp) != 0 || !s) {
    free (s);
    vb_set_error ("out of memory");
    return NULL;
  }
  return s;
}

#define SSH_MAXARGS 40

/* As libvirt runs it (-T -e none), so that a ?command= wrapper written for
 * libvirt works here too; batch mode, so a missing key fails at once
 * instead of asking for a password nobody can type, and ssh's own
 * keepalive ends a session whose link is gone. */
static char **ssh_argv (const struct vb_remote *r, const char *cmd,
                        bool master);

char **
vb_remote_ssh_argv (const struct vb_remote *r, const char *cmd)
{
  return ssh_argv (r, cmd, false);
}

/* The master of the shared connection (-M -N), which runs no command. */
char **
vb_remote_master_argv (const struct vb_remote *r, const char *path)
{
  struct vb_remote m = *r;

  m.control = (char *) path;
  return ssh_argv (&m, NULL, true);
}

/* The words of an ssh command line as a malloc'd vector. */
static char **
strv_dup (const char *const *w, int n)
{
  char **v = calloc (n + 1, sizeof *v);

  for (int i = 0; v && i < n; i++)
    if (!(v[i] = strdup (w[i])))
      vb_cleanup_strv (&v);
  return v;
}

/* ssh's own keepalive, so that a silent host ends the session within the
 * timeout; the text of the options goes into BUF. */
static int
timeout_opts (const struct vb_remote *r, const char **w, char buf[3][48])
{
  int t = r->timeout > 0 ? r->timeout : VB_REMOTE_TIMEOUT;
  int iv = t >= 15 ? 5 : (t + 2) / 3, n = 0;

  snprintf (buf[0], 48, "ServerAliveInterval=%d", iv);
  snprintf (buf[1], 48, "ServerAliveCountMax=%d", (t + iv - 1) / iv);
  snprintf (buf[2], 48, "ConnectTimeout=%d", t);
  for (int i = 0; i < 3; i++)
    w[n++] = "-o", w[n++] = buf[i];
  return n;
}

static char **
ssh_argv (const struct vb_remote *r, const char *cmd, bool master)
{
  CLEANUP_FREE char *cpath = NULL;
  char port[16], tbuf[3][48];
  const char *w[SSH_MAXARGS] = { r->command ? r->command : "ssh" };
  int n = 1;

  snprintf (port, sizeof port, "%d", r->port);
  if (r->port)
    w[n++] = "-p", w[n++] = port;
  if (r->user)
    w[n++] = "-l", w[n++] = r->user;
  if (r->keyfile)
    w[n++] = "-i", w[n++] = r->keyfile;
  w[n++] = "-T", w[n++] = "-e", w[n++] = "none";
  if (r->no_verify)
    w[n++] = "-o", w[n++] = "StrictHostKeyChecking=no";
  w[n++] = "-o", w[n++] = "BatchMode=yes";
  w[n++] = "-o", w[n++] = "LogLevel=ERROR";
  n += timeout_opts (r, w + n, tbuf);
  if (r->control) {
    if (asprintf (&cpath, "ControlPath=%s", r->control) < 0)
      return NULL;
    w[n++] = "-o", w[n++] = cpath;
    w[n++] = "-o", w[n++] = master ? "ControlMaster=yes" : "ControlMaster=no";
    if (master)
      w[n++] = "-N";           /* no -M: with ControlMaster=yes it asks */
  }
  w[n++] = r->host;
  if (cmd)
    w[n++] = cmd;
  return strv_dup (w, n);
}

int
vb_parse_port_range (const char *s, int *lo, int *hi)
{
  char *end;
  long p, q;

  errno = 0;
  p = strtol (s, &end, 10);
  q = p;
  if (end != s && *end == '-') {
    const char *t = end + 1;
    q = strtol (t, &end, 10);
    if (end == t)
      return -1;
  }
  if (errno || *end || end == s || p < 1 || q < p || q > 65535 ||
      !(*s >= '0' && *s <= '9'))
    return -1;
  *lo = p;
  *hi = q;
  return 0;
}
