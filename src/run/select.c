/* SPDX-License-Identifier: GPL-3.0-or-later */
/* select.c: domains by name and glob, and the list libvirt defines. */
#include <fnmatch.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/error.h"
#include "run/config.h"
#include "run/select.h"

static int
cmp_names (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static void
quiet_libvirt (void *op, virErrorPtr e)
{
  (void) op;
  (void) e;
}

char **
vb_run_list_domains (const char *uri)
{
  const char *u = uri ? uri : "qemu:///system";
  virConnectPtr c;
  virDomainPtr *doms = NULL;
  char **v = NULL;
  int n;

  virSetErrorFunc (NULL, quiet_libvirt);
  if (!(c = virConnectOpen (u))) {
    virErrorPtr e = virGetLastError ();
    vb_set_error ("cannot connect to libvirt at %s: %s", u,
                  e && e->message ? e->message : "unknown error");
    return NULL;
  }
  n = virConnectListAllDomains (c, &doms, 0);
  if (n < 0) {
    virErrorPtr e = virGetLastError ();
    vb_set_error ("cannot list the domains of %s: %s", u,
                  e && e->message ? e->message : "unknown error");
  }
  if (n >= 0 && !(v = calloc (1, sizeof *v)))
    vb_set_error ("out of memory");
  for (int i = 0; i < n; i++) {
    if (v && vb_run_strv_push (&v, virDomainGetName (doms[i])) < 0)
      v = (vb_run_strv_free (v), NULL);
    virDomainFree (doms[i]);
  }
  free (doms);
  virConnectClose (c);
  if (v)
    qsort (v, vb_run_strv_len (v), sizeof *v, cmp_names);
  return v;
}

static bool
listed (char *const *v, const char *s)
{
  for (size_t i = 0; v && v[i]; i++)
    if (!strcmp (v[i], s))
      return true;
  return false;
}

static bool
excluded (char *const *exclude, const char *name)
{
  for (size_t i = 0; exclude && exclude[i]; i++)
    if (fnmatch (exclude[i], name, 0) == 0)
      return true;
  return false;
}

/* OUTPUT/NAME must be a directory of its own below OUTPUT. */
static bool
usable (const char *name)
{
  return name[0] && name[0] != '.' && !strchr (name, '/');
}

int
vb_run_select (char *const *patterns, char *const *exclude,
               char *const *all, char ***matched, char ***unmatched)
{
  *matched = calloc (1, sizeof **matched);
  *unmatched = calloc (1, sizeof **unmatched);
  if (!*matched || !*unmatched) {
    vb_set_error ("out of memory");
    return -1;
  }
  for (size_t p = 0; patterns && patterns[p]; p++) {
    bool any = false;
    for (size_t i = 0; all && all[i]; i++) {
      if (fnmatch (patterns[p], all[i], 0) != 0 || !usable (all[i]))
        continue;
      any = true;
      if (!excluded (exclude, all[i]) && !listed (*matched, all[i]) &&
          vb_run_strv_push (matched, all[i]) < 0)
        return -1;
    }
    if (!any && vb_run_strv_push (unmatched, patterns[p]) < 0)
      return -1;
  }
  return 0;
}
