/* SPDX-License-Identifier: GPL-3.0-or-later */
/* verify.c: read every data file of a backup directory end to end and
 * check its checksum file and the chain; and, apart from the files, ask
 * libvirt whether the next incremental could go on.  See restore.h.  The stream
 * reader does the per-frame checks (syntax, CR LF, ascending offsets,
 * sizes, lz4 checksums, trailer); this file only drives it and gathers
 * the problems, so verify and restore judge a file the same way. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "backupset/backupset.h"
#include "backupset/chain.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "target/target.h"
#include "common/fsutil.h"
#include "restore/internal.h"
#include "restore/restore.h"
#include "virt/virt.h"

#define BUFSZ (1u << 20)

static void __attribute__((format (printf, 3, 4)))
push (char ***v, size_t *n, const char *fmt, ...)
{
  va_list ap;
  char *s, **nv;

  va_start (ap, fmt);
  if (vasprintf (&s, fmt, ap) < 0)
    s = NULL;
  va_end (ap);
  if (!s)
    return;
  nv = realloc (*v, (*n + 2) * sizeof *nv);
  if (!nv) {
    free (s);
    return;
  }
  nv[(*n)++] = s;
  nv[*n] = NULL;
  *v = nv;
}

/* Read one data file through the stream reader, payload included. */
static int
read_stream (struct vb_target *t, const struct vb_chain_file *f, char *buf,
             uint64_t *bytes)
{
  CLEANUP_RFILE struct vb_rfile *rf = vb_target_open_read (t, f->name);
  struct vb_reader *r;
  struct vb_frame fr;
  int ret = -1, n;

  if (!rf) {
    vb_set_error_errno (vb_get_errno (), "%s", f->name);
    return -1;
  }
  r = vb_reader_open (rf, f->name);
  if (!r)
    return -1;
  while ((n = vb_reader_next (r, &fr)) == 1) {
    ssize_t got = 0;

    if (fr.kind == VB_FRAME_DATA)
      while ((got = vb_reader_read (r, buf, BUFSZ)) > 0)
        ;
    if (got < 0)
      goto out;
  }
  if (n == 0) {
    ret = 0;
    *bytes += f->file_size;
  }
 out:
  vb_reader_close (r);
  return ret;
}

/* adler32 of the whole file, as virtnbdbackup 2.x stores it in
 * <file>.chksum (decimal, no newline).  1 checked, 0 none, -1 problem. */
int
vb_check_chksum (struct vb_target *t, const char *name)
{
  CLEANUP_FREE char *cname = NULL, *text = NULL, *buf = NULL;
  CLEANUP_RFILE struct vb_rfile *rf = NULL;
  uLong sum = adler32 (0, Z_NULL, 0);
  unsigned long long want;
  struct vb_target_stat st;
  uint64_t total = 0;
  size_t len;
  ssize_t n;
  char *end;

  if (!(cname = vb_bset_chksum_name (name)) ||
      vb_target_stat (t, cname, &st) < 0)
    return -1;
  if (!st.exists)
    return 0;
  text = vb_target_read (t, cname, &len);
  if (!text)
    return -1;
  errno = 0;
  want = strtoull (text, &end, 10);
  if (errno || end == text || (*end && *end != '\n')) {
    vb_set_error ("%s.chksum: not a decimal checksum", name);
    return -1;
  }
  rf = vb_target_open_read (t, name);
  buf = malloc (BUFSZ);
  if (!rf || !buf) {
    vb_set_error_errno (rf ? ENOMEM : vb_get_errno (), "%s", name);
    return -1;
  }
  while ((n = vb_rfile_pread (rf, buf, BUFSZ, total)) > 0) {
    sum = adler32_z (sum, (const Bytef *) buf, n);
    total += n;
  }
  if (n < 0) {
    vb_set_error_errno (vb_get_errno (), "%s: offset %" PRIu64, name, total);
    return -1;
  }
  if (sum != want) {
    vb_set_error ("%s: offset 0 to %" PRIu64 ": adler32 of the file is %lu "
                  "but %s.chksum says %llu: the file was changed after the "
                  "backup", name, total, (unsigned long) sum, name, want);
    return -1;
  }
  return 1;
}

static void
verify_file (const struct vb_chain *c, const struct vb_chain_file *f,
             char *buf, struct vb_verify_report *rep)
{
  struct vb_target *t = c->t;
  int r;

  rep->nfiles++;
  /* The chain already reported an unreadable meta frame, and checked a
   * raw image's size: it has no frames to read. */
  if (f->raw)
    rep->bytes += f->file_size;
  else if (f->meta_ok && read_stream (t, f, buf, &rep->bytes) == -1)
    push (&rep->problems, &rep->nproblems, "%s", vb_get_error ());
  r = vb_check_chksum (t, f->name);
  if (r == -1)
    push (&rep->problems, &rep->nproblems, "%s", vb_get_error ());
  else if (r == 1)
    rep->nchksums++;
}

/* A .partial is a leftover only when no backup of the domain runs: the
 * running one is still writing it, and removing it would break it. */
static void
note_partials (const struct vb_chain *c, struct vb_verify_report *rep)
{
  CLEANUP_FREE char *uuid = vb_bset_vmconfig_uuid (c->t);
  int running = uuid ? vb_target_locked (c->t, uuid) : 0;
  const char *name = c->domain ? c->domain : uuid;

  if (running == 1) {
    rep->backup_running = true;
    push (&rep->notes, &rep->nnotes, "a backup of domain '%s' is running: "
          "its .partial files are still being written; verify again when it "
          "has finished", name);
  }
  for (size_t i = 0; c->partials && c->partials[i]; i++)
    if (running == 1)
      push (&rep->notes, &rep->nnotes, "%s: being written by the running "
            "backup, not yet part of the chain", c->partials[i]);
    else
      push (&rep->notes, &rep->nnotes, "%s: leftover of an interrupted "
            "backup, not part of the chain (remove it)", c->partials[i]);
}

int
vb_verify (const char *dir, struct vb_verify_report *rep)
{
  CLEANUP_TARGET struct vb_target *t = NULL;
  struct vb_chain *c;
  CLEANUP_FREE char *buf = NULL;

  memset (rep, 0, sizeof *rep);
  if (!(t = vb_target_dir_open (dir, NULL)))
    return -1;
  c = vb_chain_scan (t);
  if (!c)
    return -1;
  buf = malloc (BUFSZ);
  if (!buf) {
    vb_chain_free (c);
    vb_set_error_errno (ENOMEM, "verify");
    return -1;
  }
  for (size_t i = 0; i < c->nproblems; i++)
    push (&rep->problems, &rep->nproblems, "%s", c->problems[i].text);
  for (size_t i = 0; i < c->nall; i++)
    verify_file (c, &c->all[i], buf, rep);
  note_partials (c, rep);
  if (c->nall == 0)
    push (&rep->problems, &rep->nproblems, "%s: no data files (*.data): not "
          "a backup directory", dir);
  rep->ndisks = c->ndisks;
  vb_chain_free (c);
  return 0;
}

void
vb_verify_report_clear (struct vb_verify_report *rep)
{
  vb_strv_free (rep->problems);
  vb_strv_free (rep->notes);
  memset (rep, 0, sizeof *rep);
}

/* ---- is the chain's newest checkpoint still the domain's? ---- */

static int __attribute__((format (printf, 3, 4)))
say (char **msg, int r, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  if (vasprintf (msg, fmt, ap) < 0)
    *msg = NULL;
  va_end (ap);
  return r;
}

/* Gone from libvirt: the next incremental redefines it from SAVED, which
 * works while every bitmap it names is still in the images. */
static int
judge_gone (struct vb_domain *d, const struct vb_chain *c, const char *name,
            const char *saved, char **msg)
{
  for (size_t i = 0; i < c->ndisks; i++) {
    const char *t = c->disks[i].disk;
    const struct vb_disk *disk = vb_domain_find_disk (d, t);
    char xp[256];
    CLEANUP_FREE char *mode = NULL;

    snprintf (xp, sizeof xp, "string(/domaincheckpoint/disks/disk"
              "[@name='%s']/@checkpoint)", t);
    mode = vb_xml_string (saved, xp);
    if (!mode || strcmp (mode, "bitmap"))
      continue;
    if (!disk || vb_disk_bitmap_state (d, disk, name) != VB_BITMAP_OK)
      return say (msg, 1, "domain '%s' no longer has checkpoint %s, which "
                  "the chain in %s ends with, nor its bitmap of disk %s: "
                  "the next incremental there would be refused; -l auto "
                  "starts a new chain", d->name, name, c->dir, t);
  }
  return 0;
}

static int
judge (struct vb_domain *d, const struct vb_chain *c, struct vb_target *cpt,
       char **msg)
{
  size_t n = vb_strv_len (c->cpt);

  for (size_t i = 0; i < n; i++) {
    const char *name = c->cpt[i];
    CLEANUP_FREE char *saved = vb_bset_load_checkpoint (cpt, name);
    bool held = vb_checkpoint_exists (d, name), newest = i + 1 == n;
    int r;

    if (!saved && newest)
      return say (msg, held ? 1 : 2, "the saved XML of checkpoint %s, "
                  "which the chain in %s ends with, cannot be read (%s)%s",
                  name, c->dir, vb_get_error (), held ? ": the next "
                  "incremental there would be refused (give -C DIR if the "
                  "chain keeps it elsewhere)" : "");
    if (!saved || (!held && !newest))
      continue;
    if (!held)
      return judge_gone (d, c, name, saved, msg);
    if ((r = vb_checkpoint_matches (d, name, saved)) < 0)
      return say (msg, 2, "%s", vb_get_error ());
    if (r == 0)
      return say (msg, 1, "checkpoint %s of domain '%s' is no longer the one "
                  "the chain in %s holds (%s: another backup replaced it): "
                  "the next incremental there would be refused; -l auto "
                  "starts a new chain", name, d->name, c->dir,
                  vb_get_error ());
  }
  return 0;
}

int
vb_verify_checkpoint (const char *dir, const char *uri, const char *cptdir,
                      char **msg)
{
  CLEANUP_FREE char *cpd = cptdir ? strdup (cptdir)
                                  : vb_path_join (dir, "checkpoints");
  CLEANUP_TARGET struct vb_target *t = vb_target_dir_open (dir, NULL);
  CLEANUP_TARGET struct vb_target *ct = cpd ? vb_target_dir_open (cpd, NULL)
                                            : NULL;
  struct vb_chain *c = t && ct ? vb_chain_scan (t) : NULL;
  struct vb_domain *d = NULL;
  int r = 0;

  *msg = NULL;
  if (!c || !cpd)
    r = say (msg, 2, "%s", vb_get_error ());
  else if (c->domain && vb_strv_len (c->cpt) > 0) {
    if (!(d = vb_domain_open (uri, c->domain, false)))
      r = say (msg, 2, "%s", vb_get_error ());
    else
      r = judge (d, c, ct, msg);
  }
  vb_domain_close (d);
  vb_chain_free (c);
  return r;
}
