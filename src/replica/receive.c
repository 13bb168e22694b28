/* SPDX-License-Identifier: GPL-3.0-or-later */
/* receive.c: the standby's end of a sync (`virtback replica receive DIR`,
 * run by the source through ssh).  It reports its last completed point,
 * writes the sync into overlays (or new images) through qemu-nbd, and
 * applies it only once the stream ended and every checksum matched; any
 * failure before that discards what it wrote.  After "done" a detached
 * child folds the chains the apply left.  See replica.h. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libdeflate.h>

#include "backupset/backupset.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/text.h"
#include "nbd/qemu_nbd.h"
#include "nbd/writer.h"
#include "replica/internal.h"
#include "replica/replica.h"

struct recv {
  const char *dir;
  struct vb_wire w;
  struct json_object *j;       /* the journal */
  bool fresh;                  /* a full sync: new images */
  int64_t idle;                /* --interval: seconds to wait for the next */
  volatile sig_atomic_t *cancel;
  /* the disk being received */
  struct vb_qemu_nbd q;
  char *sockdir;
  struct vb_nbd_writer *nw;
  uint32_t crc;
  uint64_t bytes;
};

static struct json_object *
hello (struct recv *x)
{
  struct json_object *h = json_object_new_object ();
  static const char *const keys[] = { "point", "domain", "uuid", "disks",
                                      "time" };

  json_object_object_add (h, "version", json_object_new_int (1));
  json_object_object_add (h, "state",
                          json_object_new_string (vb_journal_state (x->j)));
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    struct json_object *v = json_object_object_get (x->j, keys[i]);
    if (v)
      json_object_object_add (h, keys[i], json_object_get (v));
  }
  return h;
}

/* The header of the sync: same domain, starting from our point. */
static int
check_header (struct recv *x, struct json_object *h)
{
  const char *uuid = vb_json_str (h, "uuid"), *point = vb_json_str (h, "point");
  const char *parent = vb_json_str (h, "parent");
  const char *have = vb_json_str (x->j, "uuid");
  const char *ours = vb_json_str (x->j, "point");

  if (!uuid || !point || !vb_json_str (h, "domain") || !vb_json_str (h, "xml")) {
    vb_set_error ("the source sent an incomplete sync header");
    return -1;
  }
  if (have && ours && strcmp (have, uuid)) {
    vb_set_error ("%s holds the standby of domain '%s' (uuid %s), not of "
                  "'%s': replicate into another directory", x->dir,
                  vb_json_str (x->j, "domain"), have,
                  vb_json_str (h, "domain"));
    return -1;
  }
  if (parent && (!ours || strcmp (parent, ours))) {
    vb_set_error ("the source starts from %s, but %s is at %s: run the "
                  "sync again", parent, x->dir, ours ? ours : "no point");
    return -1;
  }
  x->fresh = parent == NULL;
  x->idle = vb_json_int (h, "idle", 0);
  if (x->idle < 0 || x->idle > 8 * 86400)
    x->idle = 0;
  return 0;
}

static int
begin (struct recv *x, struct json_object *h)
{
  const char *xml = vb_json_str (h, "xml");
  struct json_object *p = json_object_new_object ();

  if (vb_write_file_atomic (x->dir, "domain.xml.new", xml, strlen (xml),
                            0600) < 0)
    return -1;
  json_object_object_add (p, "point", json_object_new_string
                          (vb_json_str (h, "point")));
  if (vb_json_str (h, "parent"))
    json_object_object_add (p, "parent", json_object_new_string
                            (vb_json_str (h, "parent")));
  json_object_object_add (p, "time", json_object_new_int64
                          (vb_json_int (h, "time", 0)));
  json_object_object_add (p, "mode", json_object_new_string
                          (x->fresh ? "new" : "chain"));
  json_object_object_add (p, "disks", json_object_new_array ());
  json_object_object_add (x->j, "pending", p);
  json_object_object_add (x->j, "domain", json_object_new_string
                          (vb_json_str (h, "domain")));
  json_object_object_add (x->j, "uuid", json_object_new_string
                          (vb_json_str (h, "uuid")));
  json_object_object_add (x->j, "pid", json_object_new_int (getpid ()));
  json_object_object_add (x->j, "state", json_object_new_string ("receiving"));
  return vb_journal_write (x->dir, x->j);
}

/* qemu-img makes images 0644: the guest's data is root's alone. */
static int
private (const char *path)
{
  if (chmod (path, 0600) < 0) {
    vb_set_error_errno (errno, "chmod %s", path);
    return -1;
  }
  return 0;
}

/* The size the last completed point recorded for TARGET; else what
 * qemu-img says of the image (a journal without sizes).  -1 with an error
 * when there is no image. */
static int64_t
last_size (struct recv *x, const char *target, const char *image)
{
  struct json_object *disks = json_object_object_get (x->j, "disks");
  CLEANUP_IMAGE_INFO struct vb_image_info *info = NULL;

  if (access (image, F_OK) < 0) {
    vb_set_error_errno (errno, "disk %s has no image in %s to sync into: "
                        "%s", target, x->dir, image);
    return -1;
  }
  for (size_t i = 0; disks && i < json_object_array_length (disks); i++) {
    struct json_object *d = json_object_array_get_idx (disks, i);
    const char *t = vb_json_str (d, "target");
    int64_t size = vb_json_int (d, "size", -1);
    if (t && !strcmp (t, target) && size >= 0)
      return size;
  }
  if (!(info = vb_qemu_img_info (image))) {
    vb_prefix_error ("disk %s has no image in %s to sync into", target,
                     x->dir);
    return -1;
  }
  return info->virtual_size;
}

/* An incremental goes into an overlay of the image, of the disk's size:
 * a disk grown since the last point reads as zeros past the image's end
 * until written, as the grown disk does (its bitmap marks what the guest
 * wrote there), and committing the overlay grows the image.  A shrunk
 * disk cannot be followed that way. */
static int
make_image (struct recv *x, const char *target, uint64_t size,
            const char *path)
{
  CLEANUP_FREE char *base = vb_replica_image (x->dir, target, "");
  CLEANUP_FREE char *opts = NULL;
  int64_t had;

  if (x->fresh)
    return vb_qemu_img_create (path, "qcow2", NULL, size) < 0 ||
           private (path) < 0 ? -1 : 0;
  if (!base || (had = last_size (x, target, base)) < 0)
    return -1;
  if ((uint64_t) had > size) {
    vb_set_error ("disk %s shrank (%" PRId64 " to %" PRIu64 " bytes): "
                  "replicate into a new directory", target, had, size);
    return -1;
  }
  if (!(opts = vb_xasprintf ("backing_file=%s,backing_fmt=qcow2", base)))
    return -1;
  return vb_qemu_img_create (path, "qcow2", opts, size) < 0 ||
         private (path) < 0 ? -1 : 0;
}

static void
stop_server (struct recv *x)
{
  vb_nbd_writer_close (x->nw);
  x->nw = NULL;
  vb_qemu_nbd_stop (&x->q);
  if (x->sockdir)
    rmdir (x->sockdir);
  free (x->sockdir);
  x->sockdir = NULL;
}

/* The standby writes around the page cache where the filesystem allows
 * it: buffered, qemu-nbd spent most of an incremental's data phase
 * copying into freshly allocated page-cache pages (bench/README.md), and
 * every sync is flushed before it is applied anyway.  tmpfs and the like
 * refuse O_DIRECT: those keep the page cache.  QEMU's thread pool rather
 * than Linux AIO: a qemu-nbd with --aio=native takes 30-70 ms to exit
 * (its AIO context's teardown), every sync waits for that exit before
 * the apply, and it wrote 208 MiB of scattered 4 MiB pieces no faster
 * (bench/README.md). */
static bool
direct_ok (const char *image)
{
  int fd = open (image, O_RDONLY | O_DIRECT | O_CLOEXEC);

  if (fd < 0)
    return false;
  close (fd);
  return true;
}

static int
start_server (struct recv *x, const char *image)
{
  static const char *const direct[] = { "--cache=none", "--aio=threads",
                                        NULL };
  static const char *const buffered[] = { "--cache=writeback", NULL };
  const char *const *extra = direct_ok (image) ? direct : buffered;
  const char *tmp = getenv ("TMPDIR");
  CLEANUP_FREE char *sock = NULL;

  if (!(x->sockdir = vb_xasprintf ("%s/virtback-replica.XXXXXX",
                                   tmp ? tmp : "/tmp")) ||
      !mkdtemp (x->sockdir)) {
    vb_set_error_errno (errno, "create a private socket directory");
    free (x->sockdir);
    x->sockdir = NULL;
    return -1;
  }
  struct vb_qemu_nbd_opts qo = {
    .image = image, .format = "qcow2", .export = "", .extra = extra,
    .cancel = x->cancel,
  };
  if (!(sock = vb_path_join (x->sockdir, "nbd.sock")))
    return -1;
  qo.sock = sock;
  if (vb_qemu_nbd_start (&x->q, &qo) < 0 ||
      !(x->nw = vb_nbd_writer_open (x->q.sock, 16, 2u << 20, x->cancel)))
    return -1;
  vb_nbd_writer_set_target (x->nw, image);
  return 0;
}

static int
take (struct recv *x, void *buf, size_t len)
{
  if (vb_wire_read (&x->w, buf, len) < 0)
    return -1;
  x->crc = libdeflate_crc32 (x->crc, buf, len);
  return 0;
}

static int
data_frame (struct recv *x, uint64_t start, uint64_t len)
{
  char term[VB_TERM_LEN];

  while (len > 0) {
    size_t cap;
    char *b = vb_nbd_writer_buffer (x->nw, &cap);
    size_t n = len < cap ? len : cap;
    if (!b)
      return -1;
    if (take (x, b, n) < 0) {
      vb_nbd_writer_release (x->nw, b);
      return -1;
    }
    if (vb_nbd_writer_submit (x->nw, b, n, start) < 0)
      return -1;
    start += n;
    len -= n;
    x->bytes += n;
  }
  if (take (x, term, sizeof term) < 0)
    return -1;
  if (memcmp (term, VB_TERM, VB_TERM_LEN)) {
    vb_set_error ("the source sent a data frame without its CR LF");
    return -1;
  }
  return 0;
}

static int
frames (struct recv *x, uint64_t size)
{
  for (;;) {
    char h[VB_FRAME_LEN];
    enum vb_frame_kind kind;
    uint64_t start, len;

    if (take (x, h, sizeof h) < 0 || vb_frame_parse (h, &kind, &start, &len) < 0)
      return -1;
    if (kind == VB_FRAME_STOP)
      return 0;
    if ((kind != VB_FRAME_DATA && kind != VB_FRAME_ZERO) || start > size ||
        len > size - start) {
      vb_set_error ("the source sent a %s frame at %" PRIu64 "+%" PRIu64
                    " for a disk of %" PRIu64 " bytes",
                    vb_frame_kind_name (kind), start, len, size);
      return -1;
    }
    if (kind == VB_FRAME_DATA && data_frame (x, start, len) < 0)
      return -1;
    /* A new image reads as zeros already. */
    if (kind == VB_FRAME_ZERO && !x->fresh &&
        vb_nbd_writer_zero (x->nw, start, len) < 0)
      return -1;
  }
}

static int
note_disk (struct recv *x, const char *target, uint64_t size)
{
  struct json_object *p = json_object_object_get (x->j, "pending");
  struct json_object *disks = json_object_object_get (p, "disks");
  struct json_object *d = json_object_new_object ();

  json_object_object_add (d, "target", json_object_new_string (target));
  json_object_object_add (d, "size", json_object_new_int64 ((int64_t) size));
  json_object_array_add (disks, d);
  return vb_journal_write (x->dir, x->j);
}

static int
end_of_disk (struct recv *x, const char *target)
{
  struct json_object *e = vb_wire_recv_json (&x->w);
  int64_t crc = vb_json_int (e, "crc32", -1);
  int64_t bytes = vb_json_int (e, "bytes", -1);
  int r = 0;

  if (!e)
    return -1;
  if (crc != (int64_t) x->crc || bytes != (int64_t) x->bytes) {
    vb_set_error ("disk %s: the data differs from what the source sent "
                  "(CRC-32 %08" PRIx32 ", %" PRIu64 " bytes here): run the "
                  "sync again", target, x->crc, x->bytes);
    r = -1;
  }
  json_object_put (e);
  return r;
}

/* One disk: {"disk", "size"}, frames up to STOP, {"crc32", "bytes"}. */
static int
one_disk (struct recv *x, struct json_object *d)
{
  const char *target = vb_json_str (d, "disk");
  int64_t size = vb_json_int (d, "size", -1);
  CLEANUP_FREE char *img = NULL;

  if (!target || !vb_bset_safe_component (target) || size < 0) {
    vb_set_error ("the source sent a bad disk line");
    return -1;
  }
  if (!(img = vb_replica_image (x->dir, target, x->fresh ? "new" : "sync")) ||
      note_disk (x, target, size) < 0 || make_image (x, target, size, img) < 0 ||
      start_server (x, img) < 0)
    return -1;
  vb_phase ("disk-server");
  x->crc = 0;
  x->bytes = 0;
  if (frames (x, size) < 0 || (vb_phase ("disk-frames"), 0) ||
      vb_nbd_writer_finish (x->nw) < 0 || (vb_phase ("disk-flushed"), 0) ||
      end_of_disk (x, target) < 0) {
    vb_prefix_error ("disk %s", target);
    return -1;
  }
  stop_server (x);
  vb_phase ("disk-stopped");
  vb_info ("disk %s: %" PRIu64 " bytes received", target, x->bytes);
  return 0;
}

static int
receive_disks (struct recv *x)
{
  for (;;) {
    struct json_object *l = vb_wire_recv_json (&x->w);
    int r;
    if (!l)
      return -1;
    if (json_object_object_get (l, "end")) {
      json_object_put (l);
      return 0;
    }
    r = one_disk (x, l);
    json_object_put (l);
    if (r < 0)
      return -1;
  }
}

static int
send_flag (struct recv *x, const char *key)
{
  struct json_object *o = json_object_new_object ();
  int r;

  json_object_object_add (o, key, json_object_new_boolean (1));
  if (!strcmp (key, "done"))
    json_object_object_add (o, "point", json_object_get
                            (json_object_object_get (x->j, "point")));
  r = vb_wire_send_json (&x->w, o);
  json_object_put (o);
  return r;
}

static int
session (struct recv *x)
{
  struct json_object *h = hello (x), *hdr;
  int r;

  vb_phase ("hello");
  r = vb_wire_send_json (&x->w, h);
  json_object_put (h);
  if (r < 0 || !(hdr = vb_wire_recv_json (&x->w)))
    return -1;
  vb_phase ("header");
  r = check_header (x, hdr) < 0 || begin (x, hdr) < 0 ? -1 : 0;
  json_object_put (hdr);
  if (r < 0 || send_flag (x, "ready") < 0 || receive_disks (x) < 0)
    return -1;
  vb_phase ("received");
  json_object_object_add (x->j, "state", json_object_new_string ("applying"));
  if (vb_journal_write (x->dir, x->j) < 0 || vb_journal_apply (x->dir, x->j) < 0)
    return -1;
  vb_phase ("applied");
  return send_flag (x, "done");
}

static void
send_error (struct recv *x)
{
  struct json_object *o = json_object_new_object ();

  json_object_object_add (o, "error", json_object_new_string (vb_get_error ()));
  /* Best effort: the source may be gone, which is why we fail. */
  x->w.timeout_ms = 5000;
  vb_wire_send_json (&x->w, o);
  json_object_put (o);
}

static int
prepare (struct recv *x)
{
  if (vb_mkdir_p (x->dir, 0700) < 0 || !(x->j = vb_journal_read (x->dir)) ||
      vb_journal_recover (x->dir, x->j) < 0 ||
      vb_journal_fold (x->dir, x->j) < 0)
    return -1;
  if (!strcmp (vb_journal_state (x->j), "failed-over")) {
    vb_set_error ("%s was failed over to domain '%s', which runs on its "
                  "images: replicate into another directory", x->dir,
                  vb_json_str (x->j, "failover") ? vb_json_str (x->j, "failover")
                                                 : "?");
    return -1;
  }
  return 0;
}

/* The fold runs after "done", so the source does not wait for it: in a
 * child of its own session that keeps the lock's fd and nothing of the
 * wire, so ssh ends when this process exits. */
static void
fold_detached (struct recv *x)
{
  int null;
  pid_t pid = fork ();

  if (pid != 0) {
    if (pid < 0)
      vb_warn ("cannot fork the fold (%s): the next sync folds",
               strerror (errno));
    return;
  }
  setsid ();
  signal (SIGHUP, SIG_IGN);
  signal (SIGPIPE, SIG_IGN);
  if ((null = open ("/dev/null", O_RDWR)) >= 0) {
    dup2 (null, STDIN_FILENO);
    dup2 (null, STDOUT_FILENO);
    dup2 (null, STDERR_FILENO);
    if (null > STDERR_FILENO)
      close (null);
  }
  _exit (vb_journal_fold (x->dir, x->j) < 0 ? 1 : 0);
}

/* One sync under DIR's lock: 0, or -1 with the error sent to the source.
 * Its fold runs here when the receiver stays for the next sync, else
 * detached. */
static int
one_sync (struct recv *x)
{
  int lock = -1, r = -1;

  x->idle = 0;
  /* A receiver whose link was cut may still be timing out, or the last
   * sync's fold still running; the source waits 120 s for the hello. */
  if ((vb_mkdir_p (x->dir, 0700) == 0 &&
       (lock = vb_journal_lock (x->dir, 100)) >= 0) && prepare (x) == 0)
    r = session (x);
  if (r < 0) {
    struct vb_error e;
    vb_error_save (&e);
    stop_server (x);
    if (x->j && !strcmp (vb_journal_state (x->j), "receiving") &&
        vb_journal_recover (x->dir, x->j) < 0)
      vb_warn ("%s", vb_get_error ());
    vb_error_restore (&e);
    send_error (x);
  }
  else if (x->idle > 0 && vb_journal_fold (x->dir, x->j) < 0)
    vb_warn ("%s", vb_get_error ());
  else if (x->idle == 0 && vb_journal_fold_pending (x->dir, x->j) > 0)
    fold_detached (x);
  json_object_put (x->j);
  x->j = NULL;
  if (lock >= 0)
    close (lock);
  return r;
}

/* Idle between two syncs of --interval, without DIR's lock: 1 when the
 * next sync's "again" came, 0 when the session ended (end of input, or
 * nothing for the announced idle time), -1 on another line. */
static int
wait_again (struct recv *x)
{
  int saved = x->w.timeout_ms, r;
  struct json_object *o;

  x->w.timeout_ms = (int) x->idle * 1000;
  o = vb_wire_recv_json (&x->w);
  x->w.timeout_ms = saved;
  if (!o)
    return 0;
  r = json_object_object_get (o, "again") ? 1 : -1;
  json_object_put (o);
  if (r < 0) {
    vb_set_error ("the source sent a line out of turn between two syncs");
    send_error (x);
  }
  return r;
}

int
vb_replica_receive (const char *dir, int in, int out, int timeout_s,
                    volatile sig_atomic_t *cancel)
{
  struct recv x = { .dir = dir, .cancel = cancel, .q = { .pid = 0 } };
  int r;

  if (vb_wire_init (&x.w, in, out, "the source") < 0)
    return -1;
  x.w.timeout_ms = timeout_s * 1000;
  x.w.cancel = cancel;
  while ((r = one_sync (&x)) == 0 && x.idle > 0) {
    int a = wait_again (&x);
    if (a <= 0) {
      r = a;
      break;
    }
  }
  vb_wire_free (&x.w);
  return r;
}
