/* SPDX-License-Identifier: GPL-3.0-or-later */
/* facts.c: what qemu-img info says of each selected disk's image, kept
 * for the side files (<disk>.<ident>.qcow.json, as the peer saves them)
 * and for the check that the image can hold persistent bitmaps.
 *
 * On this host the answer takes milliseconds and is had at once, before
 * anything is changed.  On a remote host each qemu-img is an ssh session,
 * a login shell there: the questions run on threads of their own while
 * the job starts, and the answers are awaited before the side files are
 * written.  A qcow2 v2 image there is then found after the job failed to
 * start on it, and its message replaces libvirt's. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "backup/run.h"
#include "common/cleanup.h"
#include "common/error.h"

/* qcow2 compat "0.10" has no persistent bitmaps. */
static int
check_v3 (struct run *x, struct sel *s)
{
  if (s->raw || x->plan.level == VB_LEVEL_COPY || !s->info ||
      !s->info->compat || strcmp (s->info->compat, "0.10"))
    return 0;
  vb_set_error ("disk %s (%s) is qcow2 v2: persistent bitmaps need qcow2 "
                "v3: use -l copy", s->disk->target, s->disk->path);
  return -1;
}

struct ask {
  const struct vb_remote *r;
  struct sel *s;
};

static void *
ask (void *arg)
{
  struct ask *a = arg;

  /* NULL (not an image qemu-img can read): libvirt decides; the side
   * file is asked for once more and warned about then. */
  a->s->info = vb_host_img_info (a->r, a->s->disk->path);
  free (a);
  return NULL;
}

int
vb_run_facts_start (struct run *x)
{
  for (size_t i = 0; i < x->nsel; i++) {
    struct sel *s = &x->sel[i];
    struct ask *a;
    if (!s->disk->path)
      continue;
    if (!x->remote) {
      /* No check to make: the side file asks when it is written. */
      if (s->raw || x->plan.level == VB_LEVEL_COPY)
        continue;
      s->info = vb_host_img_info (NULL, s->disk->path);
      if (check_v3 (x, s) < 0)
        return -1;
      continue;
    }
    if (!(a = malloc (sizeof *a))) {
      vb_set_error ("out of memory");
      return -1;
    }
    *a = (struct ask) { x->remote, s };
    s->asking = pthread_create (&s->asker, NULL, ask, a) == 0;
    if (!s->asking)
      ask (a);
  }
  return 0;
}

void
vb_run_facts_join (struct run *x)
{
  for (size_t i = 0; x->sel && i < x->nsel; i++)
    if (x->sel[i].asking) {
      pthread_join (x->sel[i].asker, NULL);
      x->sel[i].asking = false;
    }
}

int
vb_run_facts_wait (struct run *x)
{
  vb_run_facts_join (x);
  for (size_t i = 0; i < x->nsel; i++)
    if (check_v3 (x, &x->sel[i]) < 0)
      return -1;
  return 0;
}
