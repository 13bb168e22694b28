/* SPDX-License-Identifier: GPL-3.0-or-later */
/* job.c: pull-mode backup jobs: their XML, start, end and state. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/tree.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "virt/virt.h"
#include "virt/xml.h"

static bool
in_list (const char *const *list, const char *s)
{
  for (; list && *list; list++)
    if (strcmp (*list, s) == 0)
      return true;
  return false;
}

static int
check_spec (const struct vb_backup_spec *s, bool for_backup)
{
  if (s->disks == NULL || s->disks[0] == NULL) {
    vb_set_error ("backup: no disks to back up");
    return -1;
  }
  if (!for_backup)
    return 0;
  if (s->socket_path == NULL && (s->tcp_addr == NULL || s->tcp_port <= 0)) {
    vb_set_error ("backup: no NBD socket path or TCP address");
    return -1;
  }
  /* libvirt 9.0 is meant to pick a scratch file itself but fails with
   * "argument key 'filename' must not have null value". */
  if (s->scratch_dir == NULL) {
    vb_set_error ("backup: no scratch directory");
    return -1;
  }
  return 0;
}

static int
add_backup_disk (xmlNodePtr disks, const struct vb_backup_spec *s,
                 const char *target)
{
  xmlNodePtr disk = xmlNewChild (disks, NULL, BAD_CAST "disk", NULL);
  xmlNodePtr scratch;
  CLEANUP_FREE char *file = NULL;

  xmlNewProp (disk, BAD_CAST "name", BAD_CAST target);
  xmlNewProp (disk, BAD_CAST "backup", BAD_CAST "yes");
  xmlNewProp (disk, BAD_CAST "type", BAD_CAST "file");
  /* A disk without a bitmap has no changes to list: copy it whole. */
  if (s->incremental && in_list (s->nobitmap_disks, target))
    xmlNewProp (disk, BAD_CAST "backupmode", BAD_CAST "full");
  scratch = xmlNewChild (disk, NULL, BAD_CAST "scratch", NULL);
  if (asprintf (&file, "%s/scratch-%s.qcow2", s->scratch_dir, target) < 0)
    return -1;
  xmlNewProp (scratch, BAD_CAST "file", BAD_CAST file);
  return 0;
}

/* Only the listed disks take part: libvirt 9.0 marks the others
 * backup='no' by itself. */
char *
vb_backup_xml (const struct vb_backup_spec *s)
{
  CLEANUP_XMLDOC xmlDocPtr doc = NULL;
  xmlNodePtr root, server, disks;

  if (check_spec (s, true) < 0)
    return NULL;
  if (!(doc = vb_xml_new_doc ("domainbackup", &root)))
    return NULL;
  xmlNewProp (root, BAD_CAST "mode", BAD_CAST "pull");
  if (s->incremental)
    xmlNewTextChild (root, NULL, BAD_CAST "incremental", BAD_CAST s->incremental);
  server = xmlNewChild (root, NULL, BAD_CAST "server", NULL);
  if (s->tcp_addr) {
    char port[16];
    snprintf (port, sizeof port, "%d", s->tcp_port);
    xmlNewProp (server, BAD_CAST "transport", BAD_CAST "tcp");
    xmlNewProp (server, BAD_CAST "name", BAD_CAST s->tcp_addr);
    xmlNewProp (server, BAD_CAST "port", BAD_CAST port);
    if (s->tls)
      xmlNewProp (server, BAD_CAST "tls", BAD_CAST "yes");
  }
  else {
    xmlNewProp (server, BAD_CAST "transport", BAD_CAST "unix");
    xmlNewProp (server, BAD_CAST "socket", BAD_CAST s->socket_path);
  }
  disks = xmlNewChild (root, NULL, BAD_CAST "disks", NULL);
  for (const char *const *t = s->disks; *t; t++)
    if (add_backup_disk (disks, s, *t) < 0) {
      vb_set_error_errno (ENOMEM, "backup XML: disk %s", *t);
      return NULL;
    }
  return vb_xml_doc_string (doc);
}

/* Disks left out get checkpoint='no' from libvirt 9.0. */
char *
vb_checkpoint_create_xml (const struct vb_backup_spec *s)
{
  CLEANUP_XMLDOC xmlDocPtr doc = NULL;
  xmlNodePtr root, disks;

  if (check_spec (s, false) < 0)
    return NULL;
  if (s->new_checkpoint == NULL) {
    vb_set_error ("backup: no checkpoint name");
    return NULL;
  }
  if (!(doc = vb_xml_new_doc ("domaincheckpoint", &root)))
    return NULL;
  xmlNewTextChild (root, NULL, BAD_CAST "name", BAD_CAST s->new_checkpoint);
  if (s->description)
    xmlNewTextChild (root, NULL, BAD_CAST "description",
                     BAD_CAST s->description);
  disks = xmlNewChild (root, NULL, BAD_CAST "disks", NULL);
  for (const char *const *t = s->disks; *t; t++) {
    if (in_list (s->nobitmap_disks, *t))
      continue;
    xmlNodePtr disk = xmlNewChild (disks, NULL, BAD_CAST "disk", NULL);
    xmlNewProp (disk, BAD_CAST "name", BAD_CAST *t);
    xmlNewProp (disk, BAD_CAST "checkpoint", BAD_CAST "bitmap");
  }
  return vb_xml_doc_string (doc);
}

/* Operation of the active job: 0 none, 1 a backup, 2 something else. */
static int
job_kind (struct vb_domain *d)
{
  virTypedParameterPtr params = NULL;
  int nparams = 0, type, op = 0;

  if (virDomainIsActive (d->dom) == 0)
    return 0;
  if (virDomainGetJobStats (d->dom, &type, &params, &nparams, 0) < 0) {
    vb_virt_set_error ("domain '%s': job state", d->name);
    return -1;
  }
  virTypedParamsGetInt (params, nparams, VIR_DOMAIN_JOB_OPERATION, &op);
  virTypedParamsFree (params, nparams);
  if (type != VIR_DOMAIN_JOB_BOUNDED && type != VIR_DOMAIN_JOB_UNBOUNDED)
    return 0;
  return op == VIR_DOMAIN_JOB_OPERATION_BACKUP ? 1 : 2;
}

int
vb_job_active (struct vb_domain *d)
{
  int k = job_kind (d);

  return k < 0 ? -1 : k > 0;
}

int
vb_job_settle (struct vb_domain *d, int timeout_ms)
{
  int k;

  /* Mid-begin libvirt may also fail the query ("backup job data
   * missing"): that too is a begin still going on. */
  for (int waited = 0; ((k = job_kind (d)) == 2 || k < 0) &&
       waited < timeout_ms; waited += 100)
    usleep (100 * 1000);
  return k < 0 ? -1 : k > 0;
}

static int
job_busy_error (struct vb_domain *d, int kind)
{
  if (kind == 1)
    vb_set_error ("a backup job is already running on domain '%s': "
                  "end it with -k", d->name);
  else
    vb_set_error ("domain '%s' is busy with another job", d->name);
  return -1;
}

/* Report an error saved before further libvirt calls overwrote it. */
static int
saved_error (virErrorPtr e, struct vb_domain *d, const char *what,
             enum vb_err_code code)
{
  vb_set_error_code (code, 0, "domain '%s': %s: %s", d->name, what,
                     e && e->message ? e->message : "unknown libvirt error");
  virFreeError (e);
  return -1;
}

/* QEMU's refusal of an incremental whose bitmap is gone or unusable
 * reaches us only as text in a generic libvirt error: this is the one
 * place that reads it, and callers decide by VB_ERR_BITMAP. */
static enum vb_err_code
start_code (virErrorPtr e, const struct vb_backup_spec *s)
{
  return s->incremental && e && e->message && strstr (e->message, "bitmap")
         ? VB_ERR_BITMAP : VB_ERR_GENERIC;
}

/* A job on our socket (or TCP port) after a start that reported failure
 * is the one that start began: it must not outlive the error. */
static bool
job_is_ours (struct vb_domain *d, const struct vb_backup_spec *s)
{
  CLEANUP_FREE char *jx = virDomainBackupGetXMLDesc (d->dom, 0);
  CLEANUP_FREE char *sock = jx ? vb_xml_string
    (jx, "string(/domainbackup/server/@socket)") : NULL;
  CLEANUP_FREE char *port = jx ? vb_xml_string
    (jx, "string(/domainbackup/server/@port)") : NULL;

  if (s->tcp_addr)
    return port && atoi (port) == s->tcp_port;
  return sock && strcmp (sock, s->socket_path) == 0;
}

static __thread bool port_busy;

bool
vb_backup_port_busy (void)
{
  return port_busy;
}

/* Checked before starting because libvirt would otherwise wait 30 s for
 * the domain's state lock and then fail with a timeout. */
int
vb_backup_begin (struct vb_domain *d, const struct vb_backup_spec *s)
{
  CLEANUP_FREE char *bxml = vb_backup_xml (s);
  CLEANUP_FREE char *cxml = NULL;
  virErrorPtr saved;
  int kind;

  if (bxml == NULL)
    return -1;
  if (s->new_checkpoint && (cxml = vb_checkpoint_create_xml (s)) == NULL)
    return -1;
  if ((kind = job_kind (d)) < 0)
    return -1;
  if (kind > 0)
    return job_busy_error (d, kind);
  port_busy = false;
  if (virDomainBackupBegin (d->dom, bxml, cxml, 0) == 0)
    return 0;
  saved = virSaveLastError ();
  /* QEMU's bind error reaches us only as text: read here, once. */
  port_busy = s->tcp_addr && saved && saved->message &&
              strstr (saved->message, "Address already in use");
  kind = job_kind (d);
  if (kind == 1 && job_is_ours (d, s)) {
    vb_backup_end (d);
    return saved_error (saved, d, "start backup", start_code (saved, s));
  }
  if (kind == 1) {
    virFreeError (saved);
    return job_busy_error (d, kind);
  }
  return saved_error (saved, d, "start backup", start_code (saved, s));
}

/* libvirt reports the abort before QEMU has torn the job down; a new job
 * started in that window is refused, so wait until it is really gone. */
static int
wait_job_gone (struct vb_domain *d)
{
  for (int i = 0; i < 600; i++) {
    int kind = job_kind (d);
    if (kind <= 0)
      return kind;
    usleep (50000);
  }
  vb_set_error ("domain '%s': the backup job did not end within 30 s",
                d->name);
  return -1;
}

int
vb_backup_end (struct vb_domain *d)
{
  virErrorPtr saved;
  int kind = job_kind (d);

  /* Never abort somebody else's job (a migration, a dump). */
  if (kind <= 0 || kind == 2)
    return kind < 0 ? -1 : 0;
  if (virDomainAbortJob (d->dom) == 0)
    return wait_job_gone (d);
  /* The job may have ended meanwhile ("no job is active"). */
  saved = virSaveLastError ();
  kind = job_kind (d);
  if (kind == 0) {
    virFreeError (saved);
    return 0;
  }
  return saved_error (saved, d, "end backup job", VB_ERR_GENERIC);
}

char *
vb_backup_job_xml (struct vb_domain *d)
{
  char *xml = virDomainBackupGetXMLDesc (d->dom, 0);

  if (xml == NULL)
    vb_virt_set_error ("domain '%s': backup job XML", d->name);
  return xml;
}
