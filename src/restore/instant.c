/* SPDX-License-Identifier: GPL-3.0-or-later */
/* instant.c: instant recovery.  See instant.h.  A run is: plan (point,
 * name, paths), serve (map, overlays, instant.json), start the VM, move
 * (block pulls), finish (check, stop the map, remove what is ours). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "backupset/backupset.h"
#include "backupset/chain.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "map/map.h"
#include "restore/instant.h"
#include "restore/internal.h"
#include "restore/restore.h"
#include "target/target.h"
#include "virt/virt.h"

#define STATE "instant.json"
#define POLL_NS (200 * 1000000L)
/* A finished job may be gone from QEMU a moment before libvirt drops the
 * backing from the live XML. */
#define SETTLE_POLLS 50

struct idisk {
  char *disk, *overlay;
  uint64_t size;
  bool created, pulling, todo;
  int gone, pct;
};

struct inst {
  const struct vb_instant_opts *o;
  char *input, *outdir, *until, *name, *sockdir, *socket, *xml;
  struct idisk *d;
  size_t n;
  struct vb_map map;
  bool map_up, defined, state;
  struct vb_domain *dom;
};

#define say(in, ...) \
  vb_pvm_say ((in)->o->progress, (in)->o->op, __VA_ARGS__)

static void
map_line (void *op, const char *text)
{
  const struct inst *in = op;

  say (in, "map: %s", text);
}

static struct idisk *
add_disk (struct inst *in, const char *disk, uint64_t size)
{
  struct idisk *nd = realloc (in->d, (in->n + 1) * sizeof *nd);

  if (!nd)
    return NULL;
  in->d = nd;
  memset (&nd[in->n], 0, sizeof *nd);
  nd[in->n].size = size;
  nd[in->n].pct = -1;
  if (!(nd[in->n].disk = strdup (disk)))
    return NULL;
  if (in->outdir && asprintf (&nd[in->n].overlay, "%s/%s.qcow2", in->outdir,
                              disk) < 0)
    return nd[in->n].overlay = NULL, NULL;
  return &nd[in->n++];
}

/* ---- the record of a run, OUTDIR/instant.json ---- */

static void
jset (struct json_object *o, const char *key, const char *val)
{
  if (val)
    json_object_object_add (o, key, json_object_new_string (val));
}

static int
write_state (struct inst *in)
{
  struct json_object *o = json_object_new_object (), *ds;
  const char *text;
  int r;

  jset (o, "domain", in->name);
  jset (o, "input", in->input);
  jset (o, "until", in->until);
  jset (o, "socket-dir", in->sockdir);
  jset (o, "socket", in->socket);
  jset (o, "map-dir", in->map.rundir);
  ds = json_object_new_array ();
  for (size_t i = 0; i < in->n; i++) {
    struct json_object *d = json_object_new_object ();
    jset (d, "disk", in->d[i].disk);
    json_object_object_add (d, "size", json_object_new_int64 (in->d[i].size));
    json_object_array_add (ds, d);
  }
  json_object_object_add (o, "disks", ds);
  text = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PRETTY);
  r = vb_write_file_atomic (in->outdir, STATE, text, strlen (text), 0600);
  json_object_put (o);
  if (r == 0)
    in->state = true;
  return r;
}

static char *
jget (struct json_object *o, const char *key)
{
  struct json_object *v;

  if (!json_object_object_get_ex (o, key, &v) ||
      !json_object_is_type (v, json_type_string))
    return NULL;
  return strdup (json_object_get_string (v));
}

static int
parse_state (struct inst *in, struct json_object *o, const char *path)
{
  struct json_object *ds, *d, *v;
  CLEANUP_FREE char *rundir = jget (o, "map-dir");

  in->name = jget (o, "domain");
  in->input = jget (o, "input");
  in->until = jget (o, "until");
  in->sockdir = jget (o, "socket-dir");
  in->socket = jget (o, "socket");
  if (!in->name || !in->input || !in->sockdir || !in->socket || !rundir ||
      !json_object_object_get_ex (o, "disks", &ds) ||
      !json_object_is_type (ds, json_type_array)) {
    vb_set_error ("%s: not a record of virtback's instant recovery", path);
    return -1;
  }
  for (size_t i = 0; i < json_object_array_length (ds); i++) {
    CLEANUP_FREE char *disk = NULL;
    d = json_object_array_get_idx (ds, i);
    if (!(disk = jget (d, "disk")) ||
        !json_object_object_get_ex (d, "size", &v) ||
        !add_disk (in, disk, json_object_get_int64 (v))) {
      vb_set_error ("%s: a disk without name or size", path);
      return -1;
    }
  }
  in->state = true;
  if (vb_map_attach (rundir, in->socket, &in->map) == 0)
    in->map_up = true;
  else if (rmdir (rundir) < 0 && errno != ENOENT)
    say (in, "note: %s is left from the map that is gone", rundir);
  return 0;
}

static int
read_state (struct inst *in)
{
  CLEANUP_FREE char *path = vb_path_join (in->outdir, STATE);
  CLEANUP_FREE char *text = NULL;
  struct json_object *o;
  int r;

  if (!path)
    return -1;
  if (!(text = vb_read_file (path, NULL))) {
    vb_set_error ("%s holds no instant recovery to resume (no %s): give "
                  "the -o of the interrupted run", in->outdir, STATE);
    return -1;
  }
  if (!(o = json_tokener_parse (text))) {
    vb_set_error ("%s: cannot parse it: give the -o of the interrupted run",
                  path);
    return -1;
  }
  r = parse_state (in, o, path);
  json_object_put (o);
  return r;
}

/* ---- plan a new run ---- */

/* vmconfig.<ident>.xml of the point (of its parent for a diff). */
static int
load_xml (struct inst *in, struct vb_target *t, const struct vb_chain_file *f)
{
  CLEANUP_FREE char *name = NULL;

  if (!(in->xml = vb_pvm_read_xml (t, f, &name))) {
    vb_set_error ("%s: no VM definition of the point (%s), so no VM can run "
                  "it: restore it with 'virtback restore' instead", in->input,
                  name ? name : "vmconfig");
    return -1;
  }
  return 0;
}

static int
plan_disks (struct inst *in, struct vb_target *t, struct vb_chain *c)
{
  const struct vb_chain_file *last = NULL;

  for (size_t i = 0; i < c->ndisks; i++) {
    if (in->o->disk && strcmp (in->o->disk, c->disks[i].disk))
      continue;
    if (!(last = vb_pvm_last_file (c, i, in->until)))
      return -1;
    if (!add_disk (in, c->disks[i].disk, last->meta.virtual_size)) {
      vb_set_error_errno (ENOMEM, "instant recovery");
      return -1;
    }
  }
  if (!last) {
    vb_set_error ("%s holds no disk %s: see 'virtback dump -i %s'",
                  in->input, in->o->disk ? in->o->disk : "at all", in->input);
    return -1;
  }
  return load_xml (in, t, last);
}

static int
plan_name (struct inst *in)
{
  CLEANUP_FREE char *old = NULL;

  if (in->o->name)
    in->name = strdup (in->o->name);
  else if ((old = vb_domain_xml_name (in->xml, strlen (in->xml))) &&
           asprintf (&in->name, "restore_%s", old) < 0)
    in->name = NULL;
  if (!in->name)
    return -1;
  return vb_check_domain_name_free (in->o->uri, in->name);
}

static int
plan_paths (struct inst *in)
{
  CLEANUP_FREE char *state = NULL;

  /* 0755: QEMU's user must reach the overlays in it. */
  if (vb_mkdir_p (in->o->outdir, 0755) < 0)
    return -1;
  if (!(in->outdir = realpath (in->o->outdir, NULL)))
    return vb_set_error_errno (errno, "%s", in->o->outdir), -1;
  if (!(state = vb_path_join (in->outdir, STATE)))
    return -1;
  if (access (state, F_OK) == 0) {
    vb_set_error ("%s exists: an instant recovery into %s is unfinished; "
                  "finish it with --resume, or choose another -o", state,
                  in->outdir);
    return -1;
  }
  for (size_t i = 0; i < in->n; i++) {
    struct stat st;
    if (asprintf (&in->d[i].overlay, "%s/%s.qcow2", in->outdir,
                  in->d[i].disk) < 0)
      return in->d[i].overlay = NULL, -1;
    if (lstat (in->d[i].overlay, &st) == 0) {
      vb_set_error ("%s exists: remove it or choose another -o",
                    in->d[i].overlay);
      return -1;
    }
  }
  return 0;
}

static int
plan (struct inst *in)
{
  struct vb_target *t;
  struct vb_chain *c;
  int r;

  if (!(in->input = realpath (in->o->input, NULL)))
    return vb_set_error_errno (errno, "%s", in->o->input), -1;
  if (in->o->until && !(in->until = strdup (in->o->until)))
    return -1;
  if (!(t = vb_target_dir_open (in->input, NULL)))
    return -1;
  if (!(c = vb_chain_scan (t))) {
    vb_target_close (t);
    return -1;
  }
  r = plan_disks (in, t, c);
  vb_chain_free (c);
  vb_target_close (t);
  if (r < 0 || plan_name (in) < 0)
    return -1;
  return plan_paths (in);
}

/* ---- serve the point ---- */

/* QEMU (group libvirt-qemu) must reach the socket; nobody else. */
static int
make_sockdir (struct inst *in)
{
  if (!in->sockdir) {
    /* A new run; a resumed one makes its recorded directory again. */
    if (!(in->sockdir = strdup ("/var/tmp/virtback-instant.XXXXXX")))
      return -1;
    if (!mkdtemp (in->sockdir))
      return vb_set_error_errno (errno, "cannot make %s", in->sockdir), -1;
  }
  else if (mkdir (in->sockdir, 0700) < 0 && errno != EEXIST)
    return vb_set_error_errno (errno, "cannot make %s", in->sockdir), -1;
  if (vb_pvm_share_dir (in->sockdir) < 0)
    return -1;
  if (!in->socket)
    in->socket = vb_path_join (in->sockdir, "map.sock");
  return in->socket ? 0 : -1;
}

static int
start_map (struct inst *in)
{
  struct vb_map_opts mo = {
    .input = in->input, .until = in->until, .socket = in->socket,
    .detached = true,
  };

  if (in->n == 1)
    mo.disk = in->d[0].disk;
  return vb_pvm_map_start (&mo, &in->map, &in->map_up);
}

static int
create_overlay (struct inst *in, struct idisk *d)
{
  d->created = true;
  return vb_pvm_overlay (d->overlay, d->disk, in->socket, d->size);
}

static int
start_vm (struct inst *in)
{
  CLEANUP_FREE struct vb_xml_disk *xd = calloc (in->n, sizeof *xd);
  CLEANUP_FREE char *xml = NULL, *name = NULL;

  if (!xd)
    return -1;
  for (size_t i = 0; i < in->n; i++)
    xd[i] = (struct vb_xml_disk) { .target = in->d[i].disk,
                                   .path = in->d[i].overlay,
                                   .format = "qcow2" };
  if (!(xml = vb_adjust_domain_xml (in->xml, strlen (in->xml), xd, in->n,
                                    in->name)))
    return -1;
  if (!(name = vb_domain_create (in->o->uri, xml)))
    return -1;
  in->defined = true;
  in->dom = vb_domain_open (in->o->uri, in->name, true);
  return in->dom ? 0 : -1;
}

static int
serve (struct inst *in)
{
  if (make_sockdir (in) < 0 || start_map (in) < 0 || write_state (in) < 0)
    return -1;
  for (size_t i = 0; i < in->n; i++)
    if (create_overlay (in, &in->d[i]) < 0)
      return -1;
  if (vb_pvm_cancelled (in->o->cancel)) {
    vb_set_error ("interrupted");
    return -1;
  }
  return start_vm (in);
}

/* Before the VM ran: nothing of the run may stay. */
static void
undo (struct inst *in)
{
  if (in->defined && !in->dom)
    in->dom = vb_domain_open (in->o->uri, in->name, true);
  if (in->defined && in->dom)
    vb_domain_remove (in->dom);
  for (size_t i = 0; i < in->n; i++)
    if (in->d[i].created)
      unlink (in->d[i].overlay);
  if (in->map_up)
    vb_map_stop (&in->map);
  in->map_up = false;
  if (in->state) {
    CLEANUP_FREE char *path = vb_path_join (in->outdir, STATE);
    if (path)
      unlink (path);
  }
  if (in->sockdir)
    rmdir (in->sockdir);
}

/* ---- move the data into the overlays ---- */

/* The resume hint every error after the VM runs ends with. */
static void
hint (const struct inst *in)
{
  CLEANUP_FREE char *msg = strdup (vb_get_error ());

  vb_set_error ("%s: domain %s keeps running on its overlays in %s; finish "
                "with 'virtback restore --instant --resume -N %s -i %s -o %s'",
                msg ? msg : "failed", in->name, in->outdir, in->name,
                in->input, in->outdir);
}

/* What is left to move.  One disk at a time: QEMU 7.2 was seen to crash
 * when two block pulls of a domain complete together. */
static int
plan_pulls (struct inst *in)
{
  for (size_t i = 0; i < in->n; i++) {
    struct idisk *d = &in->d[i];
    int b = vb_disk_backing (in->dom, d->disk), j;

    if (b < 0 || (j = vb_block_job (in->dom, d->disk, NULL, NULL)) < 0)
      return -1;
    if (j == 1) {               /* left running by an interrupted run */
      if (vb_block_job_speed (in->dom, d->disk, in->o->bandwidth) < 0)
        return -1;
      d->pulling = true;
    }
    d->todo = b == 1 && j == 0;
    if (b == 0 && j == 0)
      say (in, "disk %s: holds all its data already", d->disk);
  }
  return 0;
}

/* Start the next pull unless one runs. */
static int
next_pull (struct inst *in)
{
  for (size_t i = 0; i < in->n; i++)
    if (in->d[i].pulling)
      return 0;
  for (size_t i = 0; i < in->n; i++)
    if (in->d[i].todo) {
      in->d[i].todo = false;
      if (vb_block_pull (in->dom, in->d[i].disk, in->o->bandwidth) < 0)
        return -1;
      in->d[i].pulling = true;
      say (in, "disk %s: moving the data from the backup into its overlay",
           in->d[i].disk);
      return 1;
    }
  return 0;
}

/* One look at disk D: 1 still pulling, 0 done, -1 failed. */
static int
check_pull (struct inst *in, struct idisk *d)
{
  uint64_t cur = 0, end = 0;
  int j = vb_block_job (in->dom, d->disk, &cur, &end), b;

  if (j < 0)
    return -1;
  if (j == 1) {
    int pct = end ? (int) (cur * 100 / end) : 0;
    if (pct / 10 != d->pct / 10)
      say (in, "disk %s: %d%% moved (%" PRIu64 " of %" PRIu64 " MiB)",
           d->disk, pct, cur >> 20, end >> 20);
    d->pct = pct;
    return 1;
  }
  if ((b = vb_disk_backing (in->dom, d->disk)) <= 0) {
    if (b == 0 && d->pulling)
      say (in, "disk %s: 100%% moved", d->disk);
    d->pulling = false;
    return b;
  }
  if (++d->gone < SETTLE_POLLS)
    return 1;
  vb_set_error ("disk %s: the block pull ended before the end (see the "
                "domain's log in /var/log/libvirt/qemu)", d->disk);
  return -1;
}

static int
move (struct inst *in)
{
  struct timespec ts = { 0, POLL_NS };

  if (plan_pulls (in) < 0)
    return -1;
  for (;;) {
    int busy, r;

    /* The pulls go on in QEMU: ending them would gain nothing (the VM
     * needs the map all the same), and QEMU 7.2 was seen to crash on a
     * pull started again after one was cancelled. */
    if (vb_pvm_cancelled (in->o->cancel)) {
      vb_set_error ("interrupted; the block pulls go on in QEMU");
      return -1;
    }
    if (vb_map_poll (&in->map, map_line, in) < 0)
      return -1;
    if ((busy = next_pull (in)) < 0)
      return -1;
    for (size_t i = 0; i < in->n; i++) {
      if (in->d[i].pulling && (r = check_pull (in, &in->d[i])) < 0)
        return -1;
      busy += in->d[i].pulling || in->d[i].todo;
    }
    if (!busy)
      return 0;
    nanosleep (&ts, NULL);
  }
}

/* libvirt's word is not enough: no overlay may name a backing. */
static int
check_images (struct inst *in)
{
  for (size_t i = 0; i < in->n; i++) {
    CLEANUP_IMAGE_INFO struct vb_image_info *info =
      vb_qemu_img_info (in->d[i].overlay);
    bool backed = info && info->backing_file;

    if (!info || backed) {
      vb_set_error ("%s: %s", in->d[i].overlay, backed ? "its header still "
                    "names the backup as its backing file"
                    : "cannot read its header");
      return -1;
    }
  }
  return 0;
}

static int
finish (struct inst *in, struct vb_instant_result *r)
{
  CLEANUP_FREE char *state = vb_path_join (in->outdir, STATE);

  if (check_images (in) < 0)
    return -1;
  vb_map_stop (&in->map);
  in->map_up = false;
  rmdir (in->sockdir);
  if (!state || unlink (state) < 0 || vb_fsync_dir (in->outdir) < 0) {
    vb_set_error_errno (errno, "remove %s", state ? state : STATE);
    return -1;
  }
  in->state = false;
  r->name = STEAL (in->name);
  if (!(r->overlays = calloc (in->n + 1, sizeof *r->overlays)))
    return -1;
  for (size_t i = 0; i < in->n; i++)
    r->overlays[i] = STEAL (in->d[i].overlay);
  return 0;
}

/* ---- resume ---- */

static int
check_resume (struct inst *in)
{
  CLEANUP_FREE char *input = NULL;

  if (in->o->name && strcmp (in->o->name, in->name)) {
    vb_set_error ("%s/%s records domain %s, not %s: give -N %s", in->outdir,
                  STATE, in->name, in->o->name, in->name);
    return -1;
  }
  input = in->o->input ? realpath (in->o->input, NULL) : NULL;
  if (in->o->input && (!input || strcmp (input, in->input))) {
    vb_set_error ("%s/%s records the backup %s, not %s", in->outdir, STATE,
                  in->input, in->o->input);
    return -1;
  }
  return 0;
}

/* The map again, if it is gone; the VM running again, if it is not. */
static int
revive (struct inst *in)
{
  if (!in->map_up) {
    say (in, "the map of %s is gone: serving it again", in->input);
    unlink (in->socket);
    if (make_sockdir (in) < 0 || start_map (in) < 0 || write_state (in) < 0)
      return -1;
  }
  if (!(in->dom = vb_domain_open (in->o->uri, in->name, true)))
    return -1;
  if (!in->dom->running) {
    say (in, "domain %s is shut off: starting it", in->name);
    if (vb_domain_start (in->dom) < 0)
      return -1;
  }
  return vb_domain_unpause (in->dom);
}

static int
resume (struct inst *in, struct vb_instant_result *r)
{
  if (!(in->outdir = realpath (in->o->outdir, NULL))) {
    vb_set_error ("%s holds no instant recovery to resume: give the -o of "
                  "the interrupted run", in->o->outdir);
    return -1;
  }
  if (read_state (in) < 0 || check_resume (in) < 0)
    return -1;
  say (in, "resuming the instant recovery of domain %s from %s", in->name,
       in->input);
  if (revive (in) < 0 || move (in) < 0 || finish (in, r) < 0) {
    hint (in);
    return -1;
  }
  return 0;
}

/* ---- the run ---- */

static int
fresh (struct inst *in, struct vb_instant_result *r)
{
  if (plan (in) < 0)
    return -1;
  if (serve (in) < 0) {
    undo (in);
    return -1;
  }
  say (in, "domain %s is running, its disks read from the backup through "
       "%s", in->name, in->socket);
  if (move (in) < 0 || finish (in, r) < 0) {
    hint (in);
    return -1;
  }
  return 0;
}

static void
inst_free (struct inst *in)
{
  for (size_t i = 0; i < in->n; i++) {
    free (in->d[i].disk);
    free (in->d[i].overlay);
  }
  free (in->d);
  if (in->map_up) {
    /* The VM reads through it: it stays, detached; only our copy goes. */
    free (in->map.rundir);
    free (in->map.socket);
    vb_strv_free (in->map.uris);
    vb_strv_free (in->map.disks);
    if (in->map.logfd >= 0)
      close (in->map.logfd);
  }
  vb_domain_close (in->dom);
  free (in->input);
  free (in->outdir);
  free (in->until);
  free (in->name);
  free (in->sockdir);
  free (in->socket);
  free (in->xml);
}

int
vb_instant (const struct vb_instant_opts *o, struct vb_instant_result *r)
{
  struct inst in = { .o = o };
  int ret;

  memset (r, 0, sizeof *r);
  in.map.logfd = -1;
  if (!o->outdir || (!o->input && !o->resume)) {
    vb_set_error ("give the backup directory (-i) and the output "
                  "directory (-o)");
    return -1;
  }
  ret = o->resume ? resume (&in, r) : fresh (&in, r);
  inst_free (&in);
  return ret;
}

void
vb_instant_result_clear (struct vb_instant_result *r)
{
  free (r->name);
  vb_strv_free (r->overlays);
  memset (r, 0, sizeof *r);
}
