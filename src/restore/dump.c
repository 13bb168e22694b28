/* SPDX-License-Identifier: GPL-3.0-or-later */
/* dump.c: describe a backup directory's files and chain.  See restore.h.
 * The JSON document is the model; the text form is rendered from the same
 * chain so the two never disagree. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "backupset/chain.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "target/target.h"
#include "restore/restore.h"

static struct json_object *
jstr_or_null (const char *s)
{
  return s && *s ? json_object_new_string (s) : NULL;
}

static const char *
compression_text (const struct vb_chain_file *f, char *buf, size_t len)
{
  const struct vb_meta *m = &f->meta;

  if (f->raw)
    return "raw image";
  if (!m->compressed)
    return "none";
  snprintf (buf, len, "%s/%d", m->compression_method ?
            m->compression_method : "lz4", m->compression_level);
  return buf;
}

/* Why virtnbdrestore 1.9 cannot restore F exactly, or NULL if it can (or
 * F is unreadable, which the problems name).  It skips the zero frames of
 * an incremental or differential, keeping the older bytes there; it has
 * no zstd; and it copies a raw image only when told to (--raw), for a
 * raw-format disk. */
static const char *
peer_blocker (const struct vb_chain *c, const struct vb_chain_file *f)
{
  struct vb_rfile *rf;
  uint64_t zeros = 0;
  int r;

  if (!f->meta_ok)
    return NULL;
  if (f->raw)
    return "a raw image: it copies one only with its --raw, and only for a "
           "disk of raw format";
  if (f->meta.compressed && f->meta.compression_method &&
      !strcmp (f->meta.compression_method, "zstd"))
    return "zstd compression";
  if (f->level != VB_LEVEL_INC && f->level != VB_LEVEL_DIFF)
    return NULL;
  if (!(rf = vb_target_open_read (c->t, f->name)))
    return NULL;
  r = vb_stream_count_zero_frames (rf, f->name, &zeros);
  vb_rfile_close (rf);
  return r == 0 && zeros ? "zeroed ranges stored as zero frames, which it "
                           "skips (write with --peer-compatible)" : NULL;
}

static struct json_object *
file_json (const struct vb_chain *c, const struct vb_chain_file *f)
{
  const char *blocker = peer_blocker (c, f);
  struct json_object *o = json_object_new_object ();
  const struct vb_meta *m = &f->meta;

  json_object_object_add (o, "file", json_object_new_string (f->name));
  json_object_object_add (o, "level",
                          json_object_new_string (vb_level_name (f->level)));
  json_object_object_add (o, "checkpoint", jstr_or_null (m->checkpoint_name));
  json_object_object_add (o, "parent", jstr_or_null (m->parent_checkpoint));
  json_object_object_add (o, "date", jstr_or_null (m->date));
  json_object_object_add (o, "virtualSize",
                          json_object_new_uint64 (m->virtual_size));
  json_object_object_add (o, "dataSize", json_object_new_uint64 (m->data_size));
  json_object_object_add (o, "fileSize", json_object_new_uint64 (f->file_size));
  json_object_object_add (o, "rawImage", json_object_new_boolean (f->raw));
  json_object_object_add (o, "compressed", json_object_new_boolean (m->compressed));
  if (m->compressed) {
    json_object_object_add (o, "compressionMethod",
                            jstr_or_null (m->compression_method));
    json_object_object_add (o, "compressionLevel",
                            json_object_new_int (m->compression_level));
  }
  json_object_object_add (o, "streamVersion",
                          json_object_new_int (m->stream_version));
  json_object_object_add (o, "peerRestorable",
                          f->meta_ok ? json_object_new_boolean (!blocker)
                                     : NULL);
  if (blocker)
    json_object_object_add (o, "peerBlocker", json_object_new_string (blocker));
  return o;
}

static struct json_object *
files_json (const struct vb_chain *c, struct vb_chain_file *const *files,
            size_t n)
{
  struct json_object *a = json_object_new_array ();

  for (size_t i = 0; i < n; i++)
    json_object_array_add (a, file_json (c, files[i]));
  return a;
}

static struct json_object *
disk_json (const struct vb_chain *c, const struct vb_chain_disk *d)
{
  struct json_object *o = json_object_new_object ();
  struct json_object *unread = json_object_new_array ();

  json_object_object_add (o, "disk", json_object_new_string (d->disk));
  json_object_object_add (o, "restorable",
                          json_object_new_boolean (!d->broken && d->nfiles));
  json_object_object_add (o, "files", files_json (c, d->files, d->nfiles));
  json_object_object_add (o, "diffs", files_json (c, d->diffs, d->ndiffs));
  for (size_t i = 0; i < c->nall; i++)
    if (c->all[i].disk && strcmp (c->all[i].disk, d->disk) == 0 &&
        !c->all[i].meta_ok)
      json_object_array_add (unread, json_object_new_string (c->all[i].name));
  json_object_object_add (o, "unreadable", unread);
  return o;
}

static bool
chain_has (struct json_object *chain, const char *cpt)
{
  for (size_t i = 0; i < json_object_array_length (chain); i++) {
    struct json_object *e = json_object_array_get_idx (chain, i), *v;
    if (json_object_object_get_ex (e, "checkpoint", &v) &&
        strcmp (json_object_get_string (v), cpt) == 0)
      return true;
  }
  return false;
}

static void
chain_add (struct json_object *chain, const struct vb_chain_file *f)
{
  struct json_object *e;

  if (!f->meta.checkpoint_name || !*f->meta.checkpoint_name ||
      f->level == VB_LEVEL_COPY || f->level == VB_LEVEL_DIFF ||
      chain_has (chain, f->meta.checkpoint_name))
    return;
  e = json_object_new_object ();
  json_object_object_add (e, "checkpoint",
                          json_object_new_string (f->meta.checkpoint_name));
  json_object_object_add (e, "parent", jstr_or_null (f->meta.parent_checkpoint));
  json_object_array_add (chain, e);
}

/* Checkpoints in chain order with what each depends on. */
static struct json_object *
chain_json (const struct vb_chain *c)
{
  struct json_object *chain = json_object_new_array ();

  for (size_t i = 0; i < c->ndisks; i++)
    for (size_t j = 0; j < c->disks[i].nfiles; j++)
      chain_add (chain, c->disks[i].files[j]);
  return chain;
}

static struct json_object *
strv_json (char *const *v)
{
  struct json_object *a = json_object_new_array ();

  for (size_t i = 0; v && v[i]; i++)
    json_object_array_add (a, json_object_new_string (v[i]));
  return a;
}

struct json_object *
vb_dump_json (const struct vb_chain *c)
{
  struct json_object *o = json_object_new_object ();
  struct json_object *disks = json_object_new_array ();
  struct json_object *problems = json_object_new_array ();

  json_object_object_add (o, "directory", json_object_new_string (c->dir));
  json_object_object_add (o, "domain", jstr_or_null (c->domain));
  json_object_object_add (o, "checkpoints", c->cpt ? strv_json (c->cpt) : NULL);
  for (size_t i = 0; i < c->ndisks; i++)
    json_object_array_add (disks, disk_json (c, &c->disks[i]));
  json_object_object_add (o, "disks", disks);
  json_object_object_add (o, "chain", chain_json (c));
  json_object_object_add (o, "partials", strv_json (c->partials));
  for (size_t i = 0; i < c->nproblems; i++)
    json_object_array_add (problems,
                           json_object_new_string (c->problems[i].text));
  json_object_object_add (o, "problems", problems);
  return o;
}

static void
text_file (FILE *fp, const struct vb_chain *c, const struct vb_chain_file *f,
           int w)
{
  const struct vb_meta *m = &f->meta;
  char comp[64];

  fprintf (fp, "  %-*s %-5s %-20s %-20s %-26s %14" PRIu64 " %14" PRIu64
           " %s\n", w, f->name, vb_level_name (f->level),
           m->checkpoint_name && *m->checkpoint_name ? m->checkpoint_name : "-",
           m->parent_checkpoint && *m->parent_checkpoint ?
           m->parent_checkpoint : "-",
           m->date ? m->date : "-", m->virtual_size, m->data_size,
           compression_text (f, comp, sizeof comp));
}

static void
text_disk (FILE *fp, const struct vb_chain *c, const struct vb_chain_disk *d)
{
  int w = 4;

  for (size_t i = 0; i < c->nall; i++)
    if ((int) strlen (c->all[i].name) > w)
      w = strlen (c->all[i].name);
  fprintf (fp, "\ndisk %s%s\n", d->disk, d->broken ? " (NOT RESTORABLE)" : "");
  fprintf (fp, "  %-*s %-5s %-20s %-20s %-26s %14s %14s %s\n", w, "FILE",
           "LEVEL", "CHECKPOINT", "PARENT", "DATE", "VIRTUAL SIZE",
           "DATA SIZE", "COMPRESSION");
  for (size_t i = 0; i < d->nfiles; i++)
    text_file (fp, c, d->files[i], w);
  for (size_t i = 0; i < d->ndiffs; i++)
    text_file (fp, c, d->diffs[i], w);
  for (size_t i = 0; i < d->nfiles + d->ndiffs; i++) {
    const struct vb_chain_file *f = i < d->nfiles ? d->files[i]
                                                  : d->diffs[i - d->nfiles];
    const char *why = peer_blocker (c, f);
    if (why)
      fprintf (fp, "  %s: virtnbdrestore cannot restore this file (%s); "
               "virtback restore can\n", f->name, why);
  }
  for (size_t i = 0; i < c->nall; i++)
    if (c->all[i].disk && strcmp (c->all[i].disk, d->disk) == 0 &&
        !c->all[i].meta_ok)
      fprintf (fp, "  %-*s (metadata unreadable)\n", w, c->all[i].name);
}

static void
text_chain (FILE *fp, const struct vb_chain *c)
{
  struct json_object *chain = chain_json (c);
  size_t n = json_object_array_length (chain);

  fprintf (fp, "\nchain%s%s%s\n", c->domain ? " (" : "",
           c->domain ? c->domain : "", c->domain ? ".cpt)" : "");
  if (n == 0)
    fprintf (fp, "  (no checkpoints: copy backups only)\n");
  for (size_t i = 0; i < n; i++) {
    struct json_object *e = json_object_array_get_idx (chain, i), *cp, *pa;

    json_object_object_get_ex (e, "checkpoint", &cp);
    json_object_object_get_ex (e, "parent", &pa);
    fprintf (fp, "  %-24s %s%s\n", json_object_get_string (cp),
             pa ? "depends on " : "full backup",
             pa ? json_object_get_string (pa) : "");
  }
  for (size_t i = 0; i < c->ndisks; i++)
    for (size_t j = 0; j < c->disks[i].ndiffs; j++)
      fprintf (fp, "  %-24s differential of disk %s, depends on %s\n",
               c->disks[i].diffs[j]->ident, c->disks[i].disk,
               c->disks[i].diffs[j]->meta.parent_checkpoint);
  json_object_put (chain);
}

char *
vb_dump_text (const struct vb_chain *c)
{
  char *out = NULL;
  size_t len = 0;
  FILE *fp = open_memstream (&out, &len);

  if (!fp) {
    vb_set_error ("dump: out of memory");
    return NULL;
  }
  fprintf (fp, "backup directory %s", c->dir);
  if (c->domain)
    fprintf (fp, ", domain %s", c->domain);
  fprintf (fp, ", %zu data files, %zu disks\n", c->nall, c->ndisks);
  for (size_t i = 0; i < c->ndisks; i++)
    text_disk (fp, c, &c->disks[i]);
  text_chain (fp, c);
  for (size_t i = 0; c->partials && c->partials[i]; i++)
    fprintf (fp, "%s  %s: leftover of an interrupted backup, ignored\n",
             i ? "" : "\npartial files\n", c->partials[i]);
  for (size_t i = 0; i < c->nproblems; i++)
    fprintf (fp, "%s  %s\n", i ? "" : "\nproblems\n", c->problems[i].text);
  fclose (fp);
  return out;
}
