/* SPDX-License-Identifier: GPL-3.0-or-later */
/* chain.c: order a backup directory's data files by the checkpoint chain.
 * See chain.h.  The order comes from the metadata (checkpointName and
 * parentCheckpoint) and the .cpt file, never from file times: copying a
 * backup directory changes mtimes, not links. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backupset/chain.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "target/target.h"

/* The metadata starts right after the 40-byte meta frame header. */
#define META_OFFSET VB_FRAME_LEN

static int
strv_push (char ***v, size_t *n, char *s)
{
  char **nv = realloc (*v, (*n + 2) * sizeof *nv);
  if (!nv) {
    free (s);
    return -1;
  }
  nv[(*n)++] = s;
  nv[*n] = NULL;
  *v = nv;
  return 0;
}

static void
vadd_problem (struct vb_chain *c, const char *disk,
              const struct vb_chain_file *f, bool after_chain,
              const char *fmt, va_list ap)
{
  struct vb_chain_problem *np;
  char *text;

  if (vasprintf (&text, fmt, ap) < 0)
    text = NULL;
  np = realloc (c->problems, (c->nproblems + 1) * sizeof *np);
  if (!text || !np) {
    free (text);
    if (np)
      c->problems = np;
    return;
  }
  c->problems = np;
  np[c->nproblems] = (struct vb_chain_problem) {
    .disk = disk ? strdup (disk) : NULL, .text = text, .file = f,
    .after_chain = after_chain,
  };
  c->nproblems++;
  for (size_t i = 0; disk && i < c->ndisks; i++)
    if (strcmp (c->disks[i].disk, disk) == 0)
      c->disks[i].broken = true;
}

/* A problem of DISK as a whole (NULL: of the whole set). */
static void __attribute__((format (printf, 3, 4)))
add_problem (struct vb_chain *c, const char *disk, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  vadd_problem (c, disk, NULL, false, fmt, ap);
  va_end (ap);
}

/* A problem of file F: it blocks the points that apply F. */
static void __attribute__((format (printf, 3, 4)))
add_file_problem (struct vb_chain *c, const struct vb_chain_file *f,
                  const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  vadd_problem (c, f->disk, f, false, fmt, ap);
  va_end (ap);
}

/* A problem past the end of DISK's linked chain. */
static void __attribute__((format (printf, 3, 4)))
add_later_problem (struct vb_chain *c, const char *disk, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  vadd_problem (c, disk, NULL, true, fmt, ap);
  va_end (ap);
}

/* "<disk>.full.data", "<disk>.copy.data", "<disk>.inc.<cpt>.data",
 * "<disk>.diff.<epoch>.data" (the names backupset.h makes). */
static int
parse_name (struct vb_chain_file *f)
{
  const char *dot = strchr (f->name, '.');
  size_t len = strlen (f->name) - strlen (".data");
  CLEANUP_FREE char *rest = NULL;

  if (!dot || dot == f->name || (size_t) (dot - f->name) >= len)
    return -1;
  f->disk = strndup (f->name, dot - f->name);
  rest = strndup (dot + 1, len - (dot - f->name) - 1);
  if (!f->disk || !rest)
    return -1;
  if (strcmp (rest, "full") == 0)
    f->level = VB_LEVEL_FULL;
  else if (strcmp (rest, "copy") == 0)
    f->level = VB_LEVEL_COPY;
  else if (strncmp (rest, "inc.", 4) == 0 && rest[4])
    f->level = VB_LEVEL_INC;
  else if (strncmp (rest, "diff.", 5) == 0 && rest[5])
    f->level = VB_LEVEL_DIFF;
  else
    return -1;
  if (f->level == VB_LEVEL_INC || f->level == VB_LEVEL_DIFF)
    f->ident = strdup (strchr (rest, '.') + 1);
  return 0;
}

static int
cmp_file (const void *a, const void *b)
{
  return strcmp (((const struct vb_chain_file *) a)->name,
                 ((const struct vb_chain_file *) b)->name);
}

/* A data file found by list_dir. */
static int
add_data (struct vb_chain *c, const char *name, size_t *cap)
{
  struct vb_target_stat st;

  if (vb_target_stat (c->t, name, &st) == 0 && st.is_dir)
    return 0;
  if (c->nall == *cap) {
    size_t ncap = *cap ? *cap * 2 : 16;
    struct vb_chain_file *na = realloc (c->all, ncap * sizeof *na);
    if (!na)
      return -1;
    c->all = na;
    *cap = ncap;
  }
  memset (&c->all[c->nall], 0, sizeof c->all[0]);
  c->all[c->nall].name = strdup (name);
  c->nall++;
  return 0;
}

/* List the directory: data files into c->all, partials into c->partials,
 * the domain from the one *.cpt file. */
static int
list_dir (struct vb_chain *c)
{
  CLEANUP_STRV char **names = vb_target_list (c->t, NULL);
  size_t npart = 0, cap = 0;

  if (!names)
    return -1;
  for (char **e = names; *e; e++) {
    if (vb_has_suffix (*e, ".partial"))
      strv_push (&c->partials, &npart, strdup (*e));
    else if (vb_has_suffix (*e, ".cpt") && strlen (*e) > 4) {
      if (c->domain)
        add_problem (c, NULL, "%s: a second chain file besides %s.cpt: "
                     "one directory holds one domain's backups",
                     *e, c->domain);
      else
        c->domain = strndup (*e, strlen (*e) - 4);
    }
    else if (vb_has_suffix (*e, ".data") && add_data (c, *e, &cap) < 0)
      break;
  }
  if (c->nall > 1)
    qsort (c->all, c->nall, sizeof c->all[0], cmp_file);
  return 0;
}

/* Does the file start as every stream does?  Then it is a damaged stream,
 * never a raw image. */
static bool
is_stream (struct vb_rfile *rf)
{
  char head[5];

  return vb_rfile_pread (rf, head, sizeof head, 0) == (ssize_t) sizeof head &&
         memcmp (head, "meta ", sizeof head) == 0;
}

/* The metadata of raw image F of backup IDENT, as far as it is recorded. */
static void
raw_meta (struct vb_chain *c, struct vb_chain_file *f,
          const struct vb_target_stat *st, const char *ident, char *fmt,
          int64_t vsize)
{
  uint64_t alloc = st->allocated;
  char date[64];
  struct tm tm;

  f->raw = f->meta_ok = true;
  f->side_ident = strdup (ident);
  localtime_r (&st->mtime, &tm);
  strftime (date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  f->meta = (struct vb_meta) {
    .virtual_size = vsize >= 0 ? (uint64_t) vsize : f->file_size,
    .data_size = alloc < f->file_size ? alloc : f->file_size,
    .date = strdup (date), .disk_name = strdup (f->disk),
    .disk_format = fmt ? fmt : strdup ("raw"),
    /* A raw full is the base its checkpoint's incrementals apply to. */
    .checkpoint_name = strdup (f->level == VB_LEVEL_FULL && c->cpt &&
                               c->cpt[0] ? c->cpt[0] : ""),
    .parent_checkpoint = strdup (""),
  };
  if (vsize >= 0 && (uint64_t) vsize != f->file_size)
    add_file_problem (c, f, "%s: a raw image of %" PRIu64 " bytes, but "
                      "%s.%s.qcow.json records a virtual size of %" PRId64
                      " bytes: the file was cut or extended after the backup",
                      f->name, f->file_size, f->disk, ident, vsize);
}

/* Is F, a full or copy file that is no stream, a raw image its backup's
 * side files record?  Its ident is "copy", or the chain's first checkpoint
 * (a raw-format disk in a full backup is saved as <disk>.copy.data). */
static bool
raw_image (struct vb_chain *c, struct vb_chain_file *f,
           const struct vb_target_stat *st)
{
  const char *idents[] = {
    f->level == VB_LEVEL_COPY ? "copy" : NULL,
    c->cpt && c->cpt[0] ? c->cpt[0] : NULL,
  };

  if (f->level != VB_LEVEL_FULL && f->level != VB_LEVEL_COPY)
    return false;
  for (size_t i = 0; i < sizeof idents / sizeof idents[0]; i++) {
    char *fmt;
    int64_t vsize;

    if (!idents[i])
      continue;
    fmt = vb_bset_vmconfig_disk_format (c->t, idents[i], f->disk);
    vsize = vb_bset_qcow_json_vsize (c->t, idents[i], f->disk);
    if (vsize >= 0 || (fmt && !strcmp (fmt, "raw"))) {
      raw_meta (c, f, st, idents[i], fmt, vsize);
      return true;
    }
    free (fmt);
  }
  return false;
}

static void
read_meta (struct vb_chain *c, struct vb_chain_file *f)
{
  CLEANUP_RFILE struct vb_rfile *rf = vb_target_open_read (c->t, f->name);
  struct vb_target_stat st = { 0 };

  if (!rf) {
    add_file_problem (c, f, "%s: %s", f->name,
                      strerror (vb_get_errno () ? vb_get_errno () : EIO));
    return;
  }
  f->file_size = rf->size;
  if (vb_stream_read_meta (rf, f->name, &f->meta) == -1) {
    CLEANUP_FREE char *why = strdup (vb_get_error ());

    if (!is_stream (rf) && vb_target_stat (c->t, f->name, &st) == 0 &&
        raw_image (c, f, &st))
      return;
    add_file_problem (c, f, "%s: unreadable metadata: %s", f->name,
                      why ? why : "");
    return;
  }
  f->meta_ok = true;
}

static struct vb_chain_disk *
get_disk (struct vb_chain *c, const char *disk)
{
  struct vb_chain_disk *nd;

  for (size_t i = 0; i < c->ndisks; i++)
    if (strcmp (c->disks[i].disk, disk) == 0)
      return &c->disks[i];
  nd = realloc (c->disks, (c->ndisks + 1) * sizeof *nd);
  if (!nd)
    return NULL;
  c->disks = nd;
  memset (&nd[c->ndisks], 0, sizeof nd[0]);
  nd[c->ndisks].disk = strdup (disk);
  return &nd[c->ndisks++];
}

static int
push_file (struct vb_chain_file ***v, size_t *n, struct vb_chain_file *f)
{
  struct vb_chain_file **nv = realloc (*v, (*n + 1) * sizeof *nv);
  if (!nv)
    return -1;
  nv[(*n)++] = f;
  *v = nv;
  return 0;
}

/* The metadata must agree with what the file name says. */
static bool
check_consistent (struct vb_chain *c, struct vb_chain_file *f)
{
  const struct vb_meta *m = &f->meta;
  bool inc = f->level == VB_LEVEL_INC || f->level == VB_LEVEL_DIFF;

  if (strcmp (m->disk_name, f->disk) != 0) {
    add_file_problem (c, f, "%s (metadata at offset %d): diskName is '%s', "
                 "not the disk of the file name", f->name, META_OFFSET,
                 m->disk_name);
    return false;
  }
  if (m->incremental != inc || (!inc && m->parent_checkpoint[0])) {
    add_file_problem (c, f, "%s (metadata at offset %d): a %s file with "
                 "incremental=%s and parentCheckpoint '%s'", f->name,
                 META_OFFSET, vb_level_name (f->level),
                 m->incremental ? "true" : "false", m->parent_checkpoint);
    return false;
  }
  if (f->level == VB_LEVEL_INC &&
      strcmp (f->ident, m->checkpoint_name) != 0) {
    add_file_problem (c, f, "%s (metadata at offset %d): the file name says "
                 "checkpoint '%s' but the metadata says '%s': renamed or "
                 "reordered file", f->name, META_OFFSET, f->ident,
                 m->checkpoint_name);
    return false;
  }
  return true;
}

static int
cmp_diff (const void *a, const void *b)
{
  const struct vb_chain_file *x = *(struct vb_chain_file *const *) a;
  const struct vb_chain_file *y = *(struct vb_chain_file *const *) b;
  unsigned long long ex = strtoull (x->ident, NULL, 10);
  unsigned long long ey = strtoull (y->ident, NULL, 10);

  if (ex != ey)
    return ex < ey ? -1 : 1;
  return strcmp (x->name, y->name);
}

/* Sort the files of disk D into its lists; problems for the rest. */
static void
classify (struct vb_chain *c, struct vb_chain_disk *d,
          struct vb_chain_file ***incs, size_t *nincs)
{
  for (size_t i = 0; i < c->nall; i++) {
    struct vb_chain_file *f = &c->all[i];

    if (!f->disk || strcmp (f->disk, d->disk) != 0 || !f->meta_ok ||
        !check_consistent (c, f))
      continue;
    if (f->level == VB_LEVEL_FULL || f->level == VB_LEVEL_COPY) {
      if (d->nfiles > 0)
        add_problem (c, d->disk, "%s and %s: two full or copy backups of "
                     "disk %s in one directory", d->files[0]->name, f->name,
                     d->disk);
      else
        push_file (&d->files, &d->nfiles, f);
    }
    else if (f->level == VB_LEVEL_DIFF ||
             strcmp (f->meta.checkpoint_name, f->meta.parent_checkpoint) == 0)
      push_file (&d->diffs, &d->ndiffs, f);  /* no new checkpoint */
    else
      push_file (incs, nincs, f);
  }
  if (d->nfiles == 0)
    add_problem (c, d->disk, "disk %s: no full or copy backup in %s, so its "
                 "incremental files cannot be restored", d->disk, c->dir);
}

/* Follow parent -> checkpoint links from the base file. */
static void
link_incs (struct vb_chain *c, struct vb_chain_disk *d,
           struct vb_chain_file **incs, size_t nincs)
{
  bool *used = calloc (nincs + 1, sizeof *used);

  if (!used)
    return;
  while (d->nfiles > 0 && d->nfiles <= nincs) {
    struct vb_chain_file *last = d->files[d->nfiles - 1], *next = NULL;

    for (size_t i = 0; i < nincs; i++) {
      if (used[i] ||
          strcmp (incs[i]->meta.parent_checkpoint,
                  last->meta.checkpoint_name) != 0)
        continue;
      if (next) {
        add_file_problem (c, next, "%s and %s: both follow checkpoint '%s' "
                     "(duplicate incremental)", next->name, incs[i]->name,
                     last->meta.checkpoint_name);
        continue;
      }
      next = incs[i];
      used[i] = true;
    }
    if (!next)
      break;
    if (last->level == VB_LEVEL_COPY)
      add_file_problem (c, next, "%s: follows the copy backup %s, which "
                   "creates no checkpoint", next->name, last->name);
    push_file (&d->files, &d->nfiles, next);
  }
  for (size_t i = 0; i < nincs; i++)
    if (!used[i])
      add_file_problem (c, incs[i], "%s (metadata at offset %d): its parent "
                   "checkpoint '%s' is not in the chain of disk %s: an "
                   "incremental before it is missing", incs[i]->name,
                   META_OFFSET, incs[i]->meta.parent_checkpoint, d->disk);
  free (used);
}

static void
check_diffs (struct vb_chain *c, struct vb_chain_disk *d)
{
  if (d->ndiffs > 1)
    qsort (d->diffs, d->ndiffs, sizeof d->diffs[0], cmp_diff);
  for (size_t i = 0; i < d->ndiffs; i++) {
    bool found = false;

    for (size_t j = 0; j < d->nfiles && !found; j++)
      found = strcmp (d->files[j]->meta.checkpoint_name,
                      d->diffs[i]->meta.parent_checkpoint) == 0;
    if (!found)
      add_file_problem (c, d->diffs[i], "%s (metadata at offset %d): relative to "
                   "checkpoint '%s', which no file of disk %s ends at",
                   d->diffs[i]->name, META_OFFSET,
                   d->diffs[i]->meta.parent_checkpoint, d->disk);
  }
}

/* The chain's checkpoints must be exactly those of <domain>.cpt. */
static void
check_cpt (struct vb_chain *c, struct vb_chain_disk *d)
{
  size_t n = c->cpt ? vb_strv_len (c->cpt) : 0, i;

  if (!c->cpt || d->nfiles == 0 || d->files[0]->level != VB_LEVEL_FULL)
    return;
  for (i = 0; i < n && i < d->nfiles; i++) {
    if (strcmp (c->cpt[i], d->files[i]->meta.checkpoint_name) != 0) {
      add_file_problem (c, d->files[i], "%s (metadata at offset %d): ends at "
                   "checkpoint '%s' but %s.cpt lists '%s' at position %zu: "
                   "the chain is reordered", d->files[i]->name, META_OFFSET,
                   d->files[i]->meta.checkpoint_name,
                   c->domain, c->cpt[i], i + 1);
      return;
    }
  }
  if (i < n)
    add_later_problem (c, d->disk, "%s.cpt lists checkpoint '%s' but disk %s has "
                 "no data file ending at it (missing %s.inc.%s.data)",
                 c->domain, c->cpt[i], d->disk, d->disk, c->cpt[i]);
  else if (i < d->nfiles)
    add_file_problem (c, d->files[i], "%s (metadata at offset %d): checkpoint '%s' "
                 "is not listed in %s.cpt", d->files[i]->name, META_OFFSET,
                 d->files[i]->meta.checkpoint_name,
                 c->domain);
}

static void
build_disk (struct vb_chain *c, struct vb_chain_disk *d)
{
  struct vb_chain_file **incs = NULL;
  size_t nincs = 0;

  classify (c, d, &incs, &nincs);
  link_incs (c, d, incs, nincs);
  free (incs);
  check_diffs (c, d);
  check_cpt (c, d);
}

static int
cmp_disk (const void *a, const void *b)
{
  return strcmp (((const struct vb_chain_disk *) a)->disk,
                 ((const struct vb_chain_disk *) b)->disk);
}

struct vb_chain *
vb_chain_scan (struct vb_target *t)
{
  struct vb_chain *c = calloc (1, sizeof *c);

  if (!c || !(c->dir = strdup (t->where))) {
    free (c);
    vb_set_error_errno (ENOMEM, "%s", t->where);
    return NULL;
  }
  c->t = t;
  if (list_dir (c) == -1) {
    vb_chain_free (c);
    return NULL;
  }
  if (c->domain) {
    c->cpt = vb_cpt_read (t, c->domain);
    if (!c->cpt)
      add_problem (c, NULL, "%s.cpt: %s", c->domain, vb_get_error ());
  }
  for (size_t i = 0; i < c->nall; i++) {
    struct vb_chain_file *f = &c->all[i];

    if (parse_name (f) == -1) {
      add_problem (c, NULL, "%s: not a data file name this tool knows "
                   "(<disk>.full|copy|inc.<checkpoint>|diff.<epoch>.data)",
                   f->name);
      continue;
    }
    get_disk (c, f->disk);
    read_meta (c, f);
  }
  if (c->ndisks > 1)
    qsort (c->disks, c->ndisks, sizeof c->disks[0], cmp_disk);
  /* Problems found so far were recorded before the disk existed. */
  for (size_t i = 0; i < c->nproblems; i++)
    for (size_t j = 0; c->problems[i].disk && j < c->ndisks; j++)
      if (strcmp (c->problems[i].disk, c->disks[j].disk) == 0)
        c->disks[j].broken = true;
  for (size_t i = 0; i < c->ndisks; i++)
    build_disk (c, &c->disks[i]);
  return c;
}

void
vb_chain_free (struct vb_chain *c)
{
  if (!c)
    return;
  for (size_t i = 0; i < c->nall; i++) {
    free (c->all[i].name);
    free (c->all[i].disk);
    free (c->all[i].ident);
    free (c->all[i].side_ident);
    vb_meta_clear (&c->all[i].meta);
  }
  free (c->all);
  for (size_t i = 0; i < c->ndisks; i++) {
    free (c->disks[i].disk);
    free (c->disks[i].files);
    free (c->disks[i].diffs);
  }
  free (c->disks);
  for (size_t i = 0; i < c->nproblems; i++) {
    free (c->problems[i].disk);
    free (c->problems[i].text);
  }
  free (c->problems);
  vb_strv_free (c->partials);
  vb_strv_free (c->cpt);
  free (c->domain);
  free (c->dir);
  free (c);
}

const struct vb_chain_disk *
vb_chain_find_disk (const struct vb_chain *c, const char *disk)
{
  for (size_t i = 0; i < c->ndisks; i++)
    if (strcmp (c->disks[i].disk, disk) == 0)
      return &c->disks[i];
  return NULL;
}

/* Does problem P stop a restore of DISK that applies FILES (NULL: the
 * newest point, which every problem of the disk concerns)? */
static bool
blocks (const struct vb_chain_problem *p, const char *disk,
        struct vb_chain_file *const *files)
{
  if (p->disk && strcmp (p->disk, disk) != 0)
    return false;
  if (!files)
    return true;
  if (p->after_chain)
    return false;
  if (!p->file)
    return true;
  for (size_t i = 0; files[i]; i++)
    if (files[i] == p->file)
      return true;
  return false;
}

/* The problems of DISK for which blocks() is WANT, joined by "; ". */
static char *
join_problems (const struct vb_chain *c, const char *disk,
               struct vb_chain_file *const *files, bool want)
{
  char *out = NULL;
  size_t len = 0;
  FILE *fp = NULL;
  bool any = false;

  for (size_t i = 0; i < c->nproblems; i++) {
    const struct vb_chain_problem *p = &c->problems[i];

    if ((p->disk && strcmp (p->disk, disk) != 0) ||
        blocks (p, disk, files) != want)
      continue;
    if (!fp && !(fp = open_memstream (&out, &len)))
      return NULL;
    fprintf (fp, "%s%s", any ? "; " : "", p->text);
    any = true;
  }
  if (fp)
    fclose (fp);
  return out;
}

char *
vb_chain_disk_problems (const struct vb_chain *c, const char *disk)
{
  return join_problems (c, disk, NULL, true);
}

char *
vb_chain_later_problems (const struct vb_chain *c,
                         const struct vb_chain_disk *d,
                         struct vb_chain_file *const *files)
{
  return join_problems (c, d->disk, files, false);
}

const char *
vb_chain_file_ident (const struct vb_chain_file *f)
{
  if (f->side_ident)
    return f->side_ident;
  switch (f->level) {
  case VB_LEVEL_COPY: return "copy";
  case VB_LEVEL_DIFF: return f->ident;
  default: return f->meta.checkpoint_name;
  }
}

static struct vb_chain_file **
take (struct vb_chain_file *const *files, size_t n,
      struct vb_chain_file *extra)
{
  struct vb_chain_file **v = calloc (n + 2, sizeof *v);

  if (!v) {
    vb_set_error_errno (ENOMEM, "chain");
    return NULL;
  }
  memcpy (v, files, n * sizeof *v);
  v[n] = extra;
  return v;
}

/* The chain up to the file ending at checkpoint CPT (index), or -1. */
static ssize_t
chain_index (const struct vb_chain_disk *d, const char *cpt)
{
  for (size_t i = 0; i < d->nfiles; i++)
    if (strcmp (d->files[i]->meta.checkpoint_name, cpt) == 0 ||
        strcmp (d->files[i]->name, cpt) == 0)
      return i;
  return -1;
}

static struct vb_chain_file **
select_diff (const struct vb_chain_disk *d, const struct vb_chain_file *df)
{
  ssize_t i = chain_index (d, df->meta.parent_checkpoint);

  if (i < 0) {
    vb_set_error ("%s: its parent checkpoint '%s' is not in the chain",
                  df->name, df->meta.parent_checkpoint);
    return NULL;
  }
  return take (d->files, i + 1, (struct vb_chain_file *) df);
}

/* The files of point UNTIL (NULL: the newest), ignoring problems. */
static struct vb_chain_file **
pick (const struct vb_chain_disk *d, const char *until)
{
  ssize_t i;

  if (!until) {
    const char *last = d->files[d->nfiles - 1]->meta.checkpoint_name;

    for (size_t j = d->ndiffs; j-- > 0;)
      if (strcmp (d->diffs[j]->meta.parent_checkpoint, last) == 0)
        return select_diff (d, d->diffs[j]);
    return take (d->files, d->nfiles, NULL);
  }
  if ((i = chain_index (d, until)) >= 0)
    return take (d->files, i + 1, NULL);
  for (size_t j = 0; j < d->ndiffs; j++)
    if (strcmp (d->diffs[j]->ident, until) == 0 ||
        strcmp (d->diffs[j]->name, until) == 0)
      return select_diff (d, d->diffs[j]);
  vb_set_error ("disk %s has no restore point '%s': run 'virtback dump' to "
                "list its checkpoints", d->disk, until);
  return NULL;
}

struct vb_chain_file **
vb_chain_select (const struct vb_chain *c, const struct vb_chain_disk *d,
                 const char *until)
{
  CLEANUP_FREE struct vb_chain_file **files = NULL;
  CLEANUP_FREE char *why = NULL;

  if (d->nfiles > 0)
    files = pick (d, until);
  /* A point that is not there may be one that damage unlinked: all the
   * disk's problems then count, as they say which file is wrong. */
  why = join_problems (c, d->disk, until && files ? files : NULL, true);
  if (why || d->nfiles == 0) {
    vb_set_error ("the backup of disk %s is not restorable%s%s: %s", d->disk,
                  until ? " to " : "", until ? until : "",
                  why ? why : "no full or copy backup");
    return NULL;
  }
  return STEAL (files);
}

static struct vb_chain_file *
find_file (const struct vb_chain *c, const char *name)
{
  for (size_t i = 0; i < c->nall; i++)
    if (strcmp (c->all[i].name, name) == 0)
      return &c->all[i];
  return NULL;
}

/* One step of an explicit sequence: does F follow PREV? */
static int
check_step (const struct vb_chain_file *prev, const struct vb_chain_file *f)
{
  if (!f->meta_ok) {
    vb_set_error ("%s: its metadata is unreadable", f->name);
    return -1;
  }
  if (!prev) {
    if (f->level != VB_LEVEL_FULL && f->level != VB_LEVEL_COPY) {
      vb_set_error ("%s: a sequence must start with a full or copy backup",
                    f->name);
      return -1;
    }
    return 0;
  }
  if (strcmp (f->disk, prev->disk) != 0) {
    vb_set_error ("%s: of disk %s, but the sequence is of disk %s: give "
                  "one disk's files", f->name, f->disk, prev->disk);
    return -1;
  }
  if (prev->level == VB_LEVEL_DIFF || !f->meta.incremental ||
      strcmp (f->meta.parent_checkpoint, prev->meta.checkpoint_name) != 0) {
    vb_set_error ("%s: its parent checkpoint is '%s', so it cannot follow "
                  "%s", f->name, f->meta.parent_checkpoint, prev->name);
    return -1;
  }
  return 0;
}

struct vb_chain_file **
vb_chain_sequence (const struct vb_chain *c, char *const *names)
{
  size_t n = vb_strv_len (names);
  CLEANUP_FREE struct vb_chain_file **v = calloc (n + 1, sizeof *v);

  if (!v || n == 0) {
    vb_set_error ("the sequence is empty");
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    v[i] = find_file (c, names[i]);
    if (!v[i]) {
      vb_set_error ("%s: no such data file in %s", names[i], c->dir);
      return NULL;
    }
    if (check_step (i ? v[i - 1] : NULL, v[i]) == -1)
      return NULL;
  }
  return STEAL (v);
}

int
vb_chain_file_check (const struct vb_chain *c, const struct vb_chain_file *f)
{
  CLEANUP_RFILE struct vb_rfile *rf = vb_target_open_read (c->t, f->name);
  enum vb_comp_method method;
  struct vb_reader *r;
  struct vb_frame fr;
  int n = 0;

  if (!rf) {
    vb_set_error_errno (vb_get_errno (), "%s", f->name);
    return -1;
  }
  if (!(r = vb_reader_open (rf, f->name)))
    return -1;
  /* Skipping a compressed payload would decompress it: its trailer at the
   * end of the file already vouches for the size. */
  if (!vb_reader_compression (r, &method))
    while ((n = vb_reader_next (r, &fr)) == 1)
      ;
  vb_reader_close (r);
  return n;
}
