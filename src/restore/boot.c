/* SPDX-License-Identifier: GPL-3.0-or-later */
/* boot.c: boot a backup point as an isolated VM and ask its guest agent.
 * See boot.h.  A run is: plan (point, disks, definition), prepare (private
 * directory, map, overlays, isolated XML), boot, ask the agent, clean up. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <sodium.h>

#include "backupset/backupset.h"
#include "backupset/chain.h"
#include "common/cleanup.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/fsutil.h"
#include "common/proc.h"
#include "map/map.h"
#include "nbd/qemu_nbd.h"
#include "restore/boot.h"
#include "restore/internal.h"
#include "restore/restore.h"
#include "target/target.h"
#include "virt/virt.h"

#define AGENT_NS (1000 * 1000000L)
#define EXEC_NS (200 * 1000000L)
/* One agent call may not take longer than this, whatever is left. */
#define CALL_TIMEOUT 10

struct bdisk {
  char *disk, *overlay;
  uint64_t size;
};

struct boot {
  const struct vb_boot_opts *o;
  struct vb_boot_result *r;
  char *input, *xml, *dir, *socket, *console, *nvram;
  struct bdisk *d;
  size_t n;
  struct vb_map map;
  bool map_up;
  struct vb_domain *dom;
  double t0;
};

#define say(b, ...) vb_pvm_say ((b)->o->progress, (b)->o->op, __VA_ARGS__)

static double
left (const struct boot *b)
{
  return b->o->timeout - (vb_mono () - b->t0);
}

/* ---- plan: the point's disks and its VM definition ---- */

static int
add_disk (struct boot *b, const char *disk, uint64_t size)
{
  struct bdisk *nd = realloc (b->d, (b->n + 1) * sizeof *nd);

  if (!nd)
    return vb_set_error_errno (ENOMEM, "verify --boot"), -1;
  b->d = nd;
  memset (&nd[b->n], 0, sizeof *nd);
  nd[b->n].size = size;
  if (!(nd[b->n].disk = strdup (disk)))
    return vb_set_error_errno (ENOMEM, "verify --boot"), -1;
  b->n++;
  return 0;
}

/* vmconfig.<ident>.xml of the point (of its parent for a diff). */
static int
load_xml (struct boot *b, struct vb_target *t, const struct vb_chain_file *f)
{
  CLEANUP_FREE char *name = NULL;

  if (!(b->xml = vb_pvm_read_xml (t, f, &name))) {
    vb_set_error ("%s: no VM definition of the point (%s), so it cannot be "
                  "booted: check its files with 'virtback verify -i %s'",
                  b->input, name ? name : "vmconfig", b->input);
    return -1;
  }
  return (b->r->point = strdup (vb_chain_file_ident (f))) ? 0 : -1;
}

static int
plan_disks (struct boot *b, struct vb_target *t, struct vb_chain *c)
{
  const struct vb_chain_file *last = NULL;

  for (size_t i = 0; i < c->ndisks; i++) {
    if (!(last = vb_pvm_last_file (c, i, b->o->until)))
      return -1;
    if (add_disk (b, c->disks[i].disk, last->meta.virtual_size) < 0)
      return -1;
  }
  if (!last) {
    vb_set_error ("%s holds no disk at all: see 'virtback dump -i %s'",
                  b->input, b->input);
    return -1;
  }
  return load_xml (b, t, last);
}

static int
plan (struct boot *b)
{
  struct vb_target *t;
  struct vb_chain *c;
  int r;

  if (!(b->input = realpath (b->o->input, NULL)))
    return vb_set_error_errno (errno, "%s", b->o->input), -1;
  if (!(t = vb_target_dir_open (b->input, NULL)))
    return -1;
  if (!(c = vb_chain_scan (t))) {
    vb_target_close (t);
    return -1;
  }
  r = plan_disks (b, t, c);
  vb_chain_free (c);
  vb_target_close (t);
  return r;
}

/* ---- prepare: directory, map, overlays ---- */

#define BOOT_DIR_PREFIX "virtback-boot."
/* The files a run makes in its directory: overlays (*.qcow2) and these. */
static const char *const dir_files[] = {
  "virtback.pid", "console.log", "VARS.fd", "map.sock", NULL,
};

/* The directory of a run killed with -9 (its VM went with its libvirt
 * connection, its map with it): the next run removes it. */
static void
remove_run_dir (const char *dir)
{
  DIR *d = opendir (dir);
  struct dirent *e;

  while (d && (e = readdir (d)) != NULL) {
    size_t len = strlen (e->d_name);
    bool ours = len > 6 && !strcmp (e->d_name + len - 6, ".qcow2");
    for (const char *const *f = dir_files; !ours && *f; f++)
      ours = !strcmp (e->d_name, *f);
    if (ours)
      unlinkat (dirfd (d), e->d_name, 0);
  }
  if (d)
    closedir (d);
  rmdir (dir);
}

/* A run directory whose virtback is gone.  One without a pid file may be
 * a run starting: only one an hour old counts. */
static bool
run_dir_stale (const char *dir)
{
  CLEANUP_FREE char *pidf = vb_path_join (dir, "virtback.pid");
  pid_t pid = pidf ? vb_proc_pid_file (pidf) : 0;
  struct stat st;

  if (pid > 0)
    return kill (pid, 0) < 0 && errno == ESRCH;
  return stat (dir, &st) == 0 && time (NULL) - st.st_mtime > 3600;
}

static void
reap_stale (void)
{
  DIR *d = opendir ("/var/tmp");
  struct dirent *e;

  while (d && (e = readdir (d)) != NULL) {
    CLEANUP_FREE char *path = NULL;
    if (strncmp (e->d_name, BOOT_DIR_PREFIX, strlen (BOOT_DIR_PREFIX)) ||
        strlen (e->d_name) != strlen (BOOT_DIR_PREFIX) + 6 ||
        !(path = vb_path_join ("/var/tmp", e->d_name)))
      continue;
    if (run_dir_stale (path))
      remove_run_dir (path);
  }
  if (d)
    closedir (d);
}

static int
write_pid (struct boot *b)
{
  char text[32];
  int n = snprintf (text, sizeof text, "%d\n", (int) getpid ());

  return vb_write_file_atomic (b->dir, "virtback.pid", text, n, 0600);
}

/* QEMU (group libvirt-qemu) must reach the socket and overlays; nobody
 * else. */
static int
make_dir (struct boot *b)
{
  reap_stale ();
  if (!(b->dir = strdup ("/var/tmp/" BOOT_DIR_PREFIX "XXXXXX")))
    return -1;
  if (!mkdtemp (b->dir)) {
    vb_set_error_errno (errno, "cannot make %s", b->dir);
    free (b->dir);
    b->dir = NULL;
    return -1;
  }
  if (vb_pvm_share_dir (b->dir) < 0)
    return -1;
  b->socket = vb_path_join (b->dir, "map.sock");
  b->console = vb_path_join (b->dir, "console.log");
  return b->socket && b->console ? write_pid (b) : -1;
}

static int
start_map (struct boot *b)
{
  struct vb_map_opts mo = {
    .input = b->input, .until = b->o->until, .socket = b->socket,
  };

  return vb_pvm_map_start (&mo, &b->map, &b->map_up);
}

static int
create_overlay (struct boot *b, struct bdisk *d)
{
  CLEANUP_FREE char *name = NULL;

  if (asprintf (&name, "%s.qcow2", d->disk) < 0 ||
      !(d->overlay = vb_path_join (b->dir, name)))
    return vb_set_error_errno (ENOMEM, "overlay"), -1;
  return vb_pvm_overlay (d->overlay, d->disk, b->socket, d->size);
}

/* ---- the isolated definition ---- */

/* Nothing that reaches the host or the original VM's files stays; the
 * console and the agent channel are ours. */
static void
isolate_devices (struct boot *b, xmlNodePtr devices)
{
  static const char *const gone[] = {
    "interface", "hostdev", "redirdev", "smartcard", "filesystem", "shmem",
    "graphics", "audio", "tpm", "channel", "serial", "console", "parallel",
    NULL,
  };
  xmlNodePtr n;

  for (const char *const *g = gone; *g; g++)
    vb_xml_remove_children (devices, *g);
  n = xmlNewChild (devices, NULL, BAD_CAST "serial", NULL);
  xmlSetProp (n, BAD_CAST "type", BAD_CAST "file");
  xmlSetProp (xmlNewChild (n, NULL, BAD_CAST "source", NULL),
              BAD_CAST "path", BAD_CAST b->console);
  xmlSetProp (xmlNewChild (n, NULL, BAD_CAST "target", NULL),
              BAD_CAST "port", BAD_CAST "0");
  n = xmlNewChild (devices, NULL, BAD_CAST "channel", NULL);
  xmlSetProp (n, BAD_CAST "type", BAD_CAST "unix");
  n = xmlNewChild (n, NULL, BAD_CAST "target", NULL);
  xmlSetProp (n, BAD_CAST "type", BAD_CAST "virtio");
  xmlSetProp (n, BAD_CAST "name", BAD_CAST "org.qemu.guest_agent.0");
}

/* UEFI variables: a file of ours, which libvirt fills from the template,
 * never the original VM's. */
static int
isolate_nvram (struct boot *b, xmlNodePtr os)
{
  xmlNodePtr nv = vb_xml_child (os, "nvram");

  if (!nv)
    return 0;
  if (!(b->nvram = vb_path_join (b->dir, "VARS.fd")))
    return -1;
  xmlNodeSetContent (nv, BAD_CAST b->nvram);
  return 0;
}

static char *
isolate (struct boot *b, const char *xml)
{
  xmlDocPtr doc = xmlReadMemory (xml, strlen (xml), "domain.xml", NULL,
                                 XML_PARSE_NONET | XML_PARSE_NOERROR |
                                 XML_PARSE_NOWARNING);
  xmlNodePtr root = doc ? xmlDocGetRootElement (doc) : NULL, dev;
  xmlChar *out = NULL;
  int len = 0;
  char *ret = NULL;

  if (!root || !(dev = vb_xml_child (root, "devices"))) {
    vb_set_error ("the point's VM definition has no <devices>");
    xmlFreeDoc (doc);
    return NULL;
  }
  isolate_devices (b, dev);
  if (isolate_nvram (b, vb_xml_child (root, "os")) == 0) {
    xmlDocDumpFormatMemory (doc, &out, &len, 1);
    ret = out ? strndup ((char *) out, len) : NULL;
    if (!ret)
      vb_set_error ("cannot serialise the VM definition");
  }
  xmlFree (out);
  xmlFreeDoc (doc);
  return ret;
}

static char *
domain_xml (struct boot *b)
{
  CLEANUP_FREE struct vb_xml_disk *xd = calloc (b->n, sizeof *xd);
  CLEANUP_FREE char *old = NULL, *adjusted = NULL;

  if (!xd || !(old = vb_domain_xml_name (b->xml, strlen (b->xml))))
    return NULL;
  if (asprintf (&b->r->domain, "%s-verify-%d", old, (int) getpid ()) < 0) {
    b->r->domain = NULL;
    return NULL;
  }
  for (size_t i = 0; i < b->n; i++)
    xd[i] = (struct vb_xml_disk) { .target = b->d[i].disk,
                                   .path = b->d[i].overlay,
                                   .format = "qcow2" };
  if (!(adjusted = vb_adjust_domain_xml (b->xml, strlen (b->xml), xd, b->n,
                                         b->r->domain)))
    return NULL;
  return isolate (b, adjusted);
}

static int
prepare (struct boot *b)
{
  if (make_dir (b) < 0 || start_map (b) < 0)
    return -1;
  for (size_t i = 0; i < b->n; i++)
    if (create_overlay (b, &b->d[i]) < 0)
      return -1;
  return 0;
}

/* ---- ask the agent ---- */

/* The console's last non-empty line (a hint for the user), or NULL. */
static char *
console_tail (const struct boot *b)
{
  CLEANUP_FREE char *text = vb_read_file (b->console, NULL);
  char *end, *start;

  if (!text)
    return NULL;
  for (end = text + strlen (text); end > text && (end[-1] == '\n' ||
       end[-1] == '\r' || end[-1] == ' '); end--)
    ;
  *end = '\0';
  start = strrchr (text, '\n');
  start = start ? start + 1 : text;
  for (char *p = start; *p; p++)
    if ((unsigned char) *p < ' ')
      *p = ' ';
  return *start ? strndup (start, 100) : NULL;
}

static int
not_answered (struct boot *b, const char *why)
{
  CLEANUP_FREE char *tail = console_tail (b);

  vb_set_error ("the VM %s of %s %s (%s%s%s): check that qemu-guest-agent "
                "is installed and starts in the guest", b->r->domain,
                b->input, why, tail ? "its console's last line: \"" : "",
                tail ? tail : "nothing on its console", tail ? "\"" : "");
  return 1;
}

/* A running VM, a serving map; else why not. */
static int
still_up (struct boot *b)
{
  /* A transient VM that stopped is gone: libvirt no longer knows it. */
  if (vb_domain_refresh (b->dom) < 0 || !b->dom->running) {
    b->r->booted = false;
    return not_answered (b, "stopped by itself before its guest agent "
                         "answered");
  }
  if (vb_map_poll (&b->map, NULL, NULL) < 0)
    return -1;
  return 0;
}

static int
call_timeout (const struct boot *b)
{
  double l = left (b);

  return l < 1 ? 1 : l > CALL_TIMEOUT ? CALL_TIMEOUT : (int) l;
}

static int
wait_agent (struct boot *b)
{
  struct timespec ts = { AGENT_NS / 1000000000L, AGENT_NS % 1000000000L };
  bool not_up;
  char *reply;
  int r;

  for (;;) {
    if (vb_pvm_cancelled (b->o->cancel))
      return vb_set_error ("interrupted"), -1;
    if ((r = still_up (b)) != 0)
      return r;
    reply = vb_agent_command (b->dom, "{\"execute\":\"guest-ping\"}",
                              call_timeout (b), &not_up);
    if (reply) {
      free (reply);
      b->r->agent = true;
      b->r->agent_seconds = vb_mono () - b->t0;
      return 0;
    }
    if (!not_up)
      return -1;
    if (left (b) <= 0) {
      CLEANUP_FREE char *why = NULL;
      if (asprintf (&why, "booted, but its guest agent did not answer within "
                    "%d s", b->o->timeout) < 0)
        return -1;
      return not_answered (b, why);
    }
    nanosleep (&ts, NULL);
  }
}

/* The "return" member of an agent reply, parsed; NULL with an error. */
static struct json_object *
agent_return (struct boot *b, const char *cmd, struct json_object **doc)
{
  bool not_up;
  CLEANUP_FREE char *reply = vb_agent_command (b->dom, cmd, call_timeout (b),
                                               &not_up);
  struct json_object *ret;

  if (!reply)
    return NULL;
  if (!(*doc = json_tokener_parse (reply)) ||
      !json_object_object_get_ex (*doc, "return", &ret)) {
    vb_set_error ("the guest agent's reply to %s has no result", cmd);
    return NULL;
  }
  return ret;
}

static char *
jstr (struct json_object *o, const char *key)
{
  struct json_object *v;

  return json_object_object_get_ex (o, key, &v) && v
    ? strdup (json_object_get_string (v)) : strdup ("");
}

static int
read_fsinfo (struct boot *b)
{
  struct json_object *doc = NULL;
  struct json_object *ret = agent_return (b, "{\"execute\":"
                                          "\"guest-get-fsinfo\"}", &doc);
  size_t n = ret && json_object_is_type (ret, json_type_array)
    ? json_object_array_length (ret) : 0;
  int rc = ret ? 0 : -1;

  if (n && !(b->r->fs = calloc (n, sizeof *b->r->fs)))
    rc = -1;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    struct json_object *f = json_object_array_get_idx (ret, i);
    struct vb_boot_fs *fs = &b->r->fs[b->r->nfs++];
    fs->name = jstr (f, "name");
    fs->mountpoint = jstr (f, "mountpoint");
    fs->type = jstr (f, "type");
  }
  json_object_put (doc);
  return rc;
}

static char *
decode64 (struct json_object *o, const char *key)
{
  struct json_object *v;
  const char *s;
  size_t len, n = 0;
  char *out;

  if (!json_object_object_get_ex (o, key, &v) || !(s = json_object_get_string (v)))
    return strdup ("");
  len = strlen (s);
  if (!(out = malloc (len + 1)))
    return NULL;
  if (sodium_base642bin ((unsigned char *) out, len, s, len, NULL, &n, NULL,
                         sodium_base64_VARIANT_ORIGINAL) < 0)
    n = 0;
  out[n] = '\0';
  return out;
}

static int
start_exec (struct boot *b, long long *pid)
{
  struct json_object *req = json_object_new_object ();
  struct json_object *args = json_object_new_object ();
  struct json_object *argv = json_object_new_array (), *doc = NULL, *ret, *p;
  int rc = -1;

  json_object_array_add (argv, json_object_new_string ("-c"));
  json_object_array_add (argv, json_object_new_string (b->o->exec));
  json_object_object_add (args, "path", json_object_new_string ("/bin/sh"));
  json_object_object_add (args, "arg", argv);
  json_object_object_add (args, "capture-output", json_object_new_boolean (1));
  json_object_object_add (req, "execute", json_object_new_string ("guest-exec"));
  json_object_object_add (req, "arguments", args);
  if ((ret = agent_return (b, json_object_to_json_string (req), &doc)) &&
      json_object_object_get_ex (ret, "pid", &p)) {
    *pid = json_object_get_int64 (p);
    rc = 0;
  }
  else if (ret)
    vb_set_error ("guest-exec returned no pid");
  json_object_put (doc);
  json_object_put (req);
  return rc;
}

/* One look at the command: 1 still running, 0 exited, -1 error. */
static int
exec_status (struct boot *b, long long pid)
{
  CLEANUP_FREE char *cmd = NULL;
  struct json_object *doc = NULL, *ret, *v;
  int rc = -1;

  if (asprintf (&cmd, "{\"execute\":\"guest-exec-status\",\"arguments\":"
                "{\"pid\":%lld}}", pid) < 0)
    return -1;
  if ((ret = agent_return (b, cmd, &doc))) {
    rc = json_object_object_get_ex (ret, "exited", &v) &&
         json_object_get_boolean (v) ? 0 : 1;
    if (rc == 0) {
      b->r->exec_ran = true;
      b->r->exec_status = json_object_object_get_ex (ret, "exitcode", &v)
        ? json_object_get_int (v) : -1;
      b->r->exec_out = decode64 (ret, "out-data");
      b->r->exec_err = decode64 (ret, "err-data");
    }
  }
  json_object_put (doc);
  return rc;
}

/* The first MAX bytes of S as one line, for an error message. */
static char *
one_line (const char *s, size_t max)
{
  char *o = strndup (s ? s : "", max);
  size_t n;

  if (!o)
    return NULL;
  for (char *p = o; *p; p++)
    if ((unsigned char) *p < ' ')
      *p = ' ';
  for (n = strlen (o); n > 0 && o[n - 1] == ' '; n--)
    o[n - 1] = '\0';
  return o;
}

static int
run_exec (struct boot *b)
{
  struct timespec ts = { 0, EXEC_NS };
  long long pid;
  int r;

  say (b, "running '%s' in the guest", b->o->exec);
  if (start_exec (b, &pid) < 0)
    return -1;
  while ((r = exec_status (b, pid)) == 1) {
    if (vb_pvm_cancelled (b->o->cancel))
      return vb_set_error ("interrupted"), -1;
    if (left (b) <= 0) {
      vb_set_error ("'%s' was still running in the VM %s after %d s: give "
                    "a longer --timeout", b->o->exec, b->r->domain,
                    b->o->timeout);
      return 1;
    }
    nanosleep (&ts, NULL);
  }
  if (r < 0)
    return -1;
  if (b->r->exec_status != 0) {
    CLEANUP_FREE char *err = one_line (b->r->exec_err, 200);
    vb_set_error ("'%s' failed in the VM %s with exit status %d%s%s",
                  b->o->exec, b->r->domain, b->r->exec_status,
                  err && *err ? ": " : "", err ? err : "");
    return 1;
  }
  return 0;
}

/* ---- the run ---- */

static int
boot_and_ask (struct boot *b)
{
  CLEANUP_FREE char *xml = domain_xml (b);
  int r;

  if (!xml)
    return -1;
  say (b, "booting %s of %s as the VM %s", b->r->point, b->input,
       b->r->domain);
  b->t0 = vb_mono ();
  if (!(b->dom = vb_domain_create_transient (b->o->uri, xml)))
    return -1;
  b->r->booted = true;
  say (b, "the VM %s runs; waiting for its guest agent (at most %d s)",
       b->r->domain, b->o->timeout);
  if ((r = wait_agent (b)) != 0)
    return r;
  say (b, "the guest agent answered after %.1f s", b->r->agent_seconds);
  if (read_fsinfo (b) < 0)
    return -1;
  return b->o->exec ? run_exec (b) : 0;
}

/* Every path: the VM, the map, the overlays, the directory. */
static void
clean_up (struct boot *b)
{
  if (b->dom) {
    CLEANUP_FREE char *msg = strdup (vb_get_error ());
    vb_domain_destroy (b->dom);
    vb_domain_close (b->dom);
    if (msg)
      vb_set_error ("%s", msg);
  }
  if (b->map_up)
    vb_map_stop (&b->map);
  for (size_t i = 0; i < b->n; i++) {
    if (b->d[i].overlay)
      unlink (b->d[i].overlay);
    free (b->d[i].overlay);
    free (b->d[i].disk);
  }
  if (b->dir)
    remove_run_dir (b->dir);
  free (b->d);
  free (b->input);
  free (b->xml);
  free (b->dir);
  free (b->socket);
  free (b->console);
  free (b->nvram);
}

int
vb_verify_boot (const struct vb_boot_opts *o, struct vb_boot_result *r)
{
  struct boot b = { .o = o, .r = r };
  int ret;

  memset (r, 0, sizeof *r);
  b.map.logfd = -1;
  if (sodium_init () < 0) {
    vb_set_error ("libsodium does not initialise");
    return -1;
  }
  if (!o->input || o->timeout <= 0) {
    vb_set_error ("give the backup directory (-i) and a --timeout above 0");
    return -1;
  }
  ret = plan (&b);
  if (ret == 0)
    ret = prepare (&b);
  if (ret == 0)
    ret = boot_and_ask (&b);
  clean_up (&b);
  return ret;
}

static void
jadd (struct json_object *o, const char *key, const char *val)
{
  json_object_object_add (o, key, val ? json_object_new_string (val)
                                      : NULL);
}

struct json_object *
vb_boot_result_json (const struct vb_boot_result *r, const char *input,
                     const char *error)
{
  struct json_object *o = json_object_new_object ();
  struct json_object *fs = json_object_new_array ();
  char secs[32];

  jadd (o, "input", input);
  jadd (o, "point", r->point);
  jadd (o, "domain", r->domain);
  json_object_object_add (o, "booted", json_object_new_boolean (r->booted));
  json_object_object_add (o, "agent", json_object_new_boolean (r->agent));
  snprintf (secs, sizeof secs, "%.1f", r->agent_seconds);
  json_object_object_add (o, "agent-seconds", r->agent
                          ? json_object_new_double_s (r->agent_seconds, secs)
                          : NULL);
  for (size_t i = 0; i < r->nfs; i++) {
    struct json_object *f = json_object_new_object ();
    jadd (f, "name", r->fs[i].name);
    jadd (f, "mountpoint", r->fs[i].mountpoint);
    jadd (f, "type", r->fs[i].type);
    json_object_array_add (fs, f);
  }
  json_object_object_add (o, "filesystems", fs);
  if (r->exec_ran) {
    struct json_object *e = json_object_new_object ();
    json_object_object_add (e, "exitcode",
                            json_object_new_int (r->exec_status));
    jadd (e, "stdout", r->exec_out);
    jadd (e, "stderr", r->exec_err);
    json_object_object_add (o, "exec", e);
  }
  json_object_object_add (o, "ok", json_object_new_boolean (!error));
  jadd (o, "error", error);
  return o;
}

void
vb_boot_result_clear (struct vb_boot_result *r)
{
  for (size_t i = 0; i < r->nfs; i++) {
    free (r->fs[i].name);
    free (r->fs[i].mountpoint);
    free (r->fs[i].type);
  }
  free (r->fs);
  free (r->domain);
  free (r->point);
  free (r->exec_out);
  free (r->exec_err);
  memset (r, 0, sizeof *r);
}
