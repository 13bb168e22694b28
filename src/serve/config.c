/* SPDX-License-Identifier: GPL-3.0-or-later */
/* config.c: virtback serve's configuration file (serve.h), INI read with
 * libinih.  Sections and keys:
 *   [serve]  listen, cert, key, ca, control_socket, local_socket
 *   [file]   allow = DIR (one line per directory; file:// tickets only
 *            under these)
 * Anything else is refused, naming the line, so that a typo never leaves
 * a setting silently at its default. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "common/error.h"
#include "serve/serve.h"

struct parse_state {
  struct vb_serve_config *c;
  char err[256];
};

static int
set_str (char **slot, const char *value)
{
  free (*slot);
  return (*slot = strdup (value)) != NULL;
}

static int
add_dir (struct vb_serve_config *c, const char *value)
{
  char **v = realloc (c->file_dirs, (c->ndirs + 2) * sizeof *v);

  if (!v)
    return 0;
  c->file_dirs = v;
  if (!(v[c->ndirs] = strdup (value)))
    return 0;
  v[++c->ndirs] = NULL;
  return 1;
}

static int
on_key (void *op, const char *section, const char *name, const char *value)
{
  struct parse_state *ps = op;
  struct vb_serve_config *c = ps->c;
  static const char *const keys[] = { "listen", "cert", "key", "ca",
                                      "control_socket", "local_socket" };
  char **slots[] = { &c->listen, &c->cert, &c->key, &c->ca,
                     &c->control_socket, &c->local_socket };

  if (!strcmp (section, "serve"))
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
      if (!strcmp (name, keys[i]))
        return set_str (slots[i], value);
  if (!strcmp (section, "file") && !strcmp (name, "allow"))
    return add_dir (c, value);
  if (!ps->err[0])
    snprintf (ps->err, sizeof ps->err, "unknown key \"%.64s\" in [%.64s]",
              name, section);
  return 0;
}

int
vb_serve_config_load (const char *path, struct vb_serve_config *c)
{
  struct parse_state ps = { .c = c };
  int r = ini_parse (path, on_key, &ps);

  if (r < 0) {
    vb_set_error_errno (errno ? errno : EIO, "--config %s", path);
    return -1;
  }
  if (r > 0) {
    vb_set_error ("--config %s: line %d: %s: see virtback-serve(1)", path, r,
                  ps.err[0] ? ps.err : "not a key = value line or [section]");
    return -1;
  }
  return 0;
}

void
vb_serve_config_free (struct vb_serve_config *c)
{
  free (c->listen);
  free (c->cert);
  free (c->key);
  free (c->ca);
  free (c->control_socket);
  free (c->local_socket);
  for (size_t i = 0; i < c->ndirs; i++)
    free (c->file_dirs[i]);
  free (c->file_dirs);
  memset (c, 0, sizeof *c);
}
