/* SPDX-License-Identifier: GPL-3.0-or-later */
/* test-virt.c: the parts of src/virt that need no libvirtd: domain XML to
 * disks, the backup/checkpoint XML we generate, XPath values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/xpath.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/test.h"
#include "virt/virt.h"


#define DOMAIN(devices) \
  "<domain type='kvm'><name>t</name><devices>" devices "</devices></domain>"

static const char sample[] = DOMAIN (
  "<disk type='file' device='disk'>"
  " <driver name='qemu' type='qcow2'/>"
  " <source file='/var/lib/libvirt/images/a.qcow2' index='2'/>"
  " <target dev='sda' bus='sata'/><alias name='sata0-0-0'/></disk>"
  "<disk type='file' device='disk'>"
  " <driver name='qemu' type='raw'/><source file='/img/b.raw'/>"
  " <target dev='sdb' bus='sata'/></disk>"
  "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>"
  " <source file='/iso/x.iso'/><target dev='sdc' bus='sata'/><readonly/></disk>"
  "<disk type='block' device='disk'><driver name='qemu' type='qcow2'/>"
  " <source dev='/dev/vg/lv'/><target dev='vda' bus='virtio'/></disk>"
  "<disk type='file'><driver name='qemu' type='qcow2'/>"
  " <target dev='vdb' bus='virtio'/></disk>"
  "<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>"
  " <source pool='default' volume='v1'/><target dev='vdc' bus='virtio'/></disk>"
  "<disk type='file' device='floppy'><target dev='fda'/></disk>");

static void
test_parse_sample (void)
{
  struct vb_disk *d = NULL;
  size_t n = 0;

  CHECK (vb_parse_disks (sample, false, &d, &n) == 0);
  CHECK (n == 7);
  if (n != 7)
    return;
  CHECK_STR (d[0].target, "sda");
  CHECK_STR (d[0].device, "disk");
  CHECK_STR (d[0].format, "qcow2");
  CHECK_STR (d[0].path, "/var/lib/libvirt/images/a.qcow2");
  CHECK_STR (d[0].alias, "sata0-0-0");
  CHECK (d[0].skip == VB_DISK_BACKUP);
  CHECK_STR (d[1].format, "raw");
  CHECK_STR (d[1].path, "/img/b.raw");
  CHECK (d[1].alias == NULL);
  CHECK (d[1].skip == VB_DISK_SKIP_RAW);
  CHECK_STR (d[2].device, "cdrom");
  CHECK (d[2].skip == VB_DISK_SKIP_DEVICE);
  CHECK_STR (d[3].path, "/dev/vg/lv");
  CHECK (d[3].skip == VB_DISK_BACKUP);
  CHECK_STR (d[4].device, "disk");      /* the default */
  CHECK (d[4].path == NULL);
  CHECK (d[4].skip == VB_DISK_SKIP_NOSOURCE);
  CHECK_STR (d[5].target, "vdc");
  CHECK (d[5].path == NULL);            /* a volume: no file name */
  CHECK (d[5].skip == VB_DISK_BACKUP);
  CHECK_STR (d[6].device, "floppy");
  CHECK (d[6].format == NULL);
  CHECK (d[6].skip == VB_DISK_SKIP_DEVICE);
  vb_disks_free (d, n);

  CHECK (vb_parse_disks (sample, true, &d, &n) == 0);
  CHECK (n == 7 && d[1].skip == VB_DISK_BACKUP);
  CHECK (n == 7 && d[2].skip == VB_DISK_SKIP_DEVICE);
  vb_disks_free (d, n);
}

static void
test_parse_bad_targets (void)
{
  static const char *const bad[] = {
    DOMAIN ("<disk type='file' device='disk'><source file='/a'/>"
            "<target dev='../x'/></disk>"),
    DOMAIN ("<disk type='file' device='disk'><source file='/a'/>"
            "<target dev='a/b'/></disk>"),
    DOMAIN ("<disk type='file' device='cdrom'><target dev='..'/></disk>"),
    DOMAIN ("<disk type='file' device='disk'><target dev='.'/></disk>"),
    DOMAIN ("<disk type='file' device='disk'><target dev=''/></disk>"),
    DOMAIN ("<disk type='file' device='disk'><source file='/a'/></disk>"),
    "<domain><devices><disk></devices></domain>",   /* not well-formed */
  };
  struct vb_disk *d = NULL;
  size_t n = 12345;

  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    vb_set_error_str ("");
    CHECK (vb_parse_disks (bad[i], false, &d, &n) == -1);
    CHECK (d == NULL && n == 12345);
    CHECK (strstr (vb_get_error (), "domain XML") != NULL);
  }
  CHECK (vb_parse_disks (bad[0], false, &d, &n) == -1);
  CHECK (strstr (vb_get_error (), "'../x'") != NULL);

  /* No disks at all is not an error. */
  CHECK (vb_parse_disks (DOMAIN (""), false, &d, &n) == 0);
  CHECK (n == 0);
  vb_disks_free (d, n);
}

/* The string value of XPATH in XML, parsed independently of virt.h. */
static char *
xp (const char *xml, const char *xpath)
{
  xmlDocPtr doc = xmlReadMemory (xml, strlen (xml), "t.xml", NULL,
                                 XML_PARSE_NONET);
  xmlXPathContextPtr ctx;
  xmlXPathObjectPtr obj;
  char *r;

  if (doc == NULL)
    return strdup ("<unparsable>");
  ctx = xmlXPathNewContext (doc);
  obj = xmlXPathEvalExpression (BAD_CAST xpath, ctx);
  if (obj) {
    xmlChar *v = xmlXPathCastToString (obj);
    r = strdup ((const char *) v);
    xmlFree (v);
  }
  else
    r = strdup ("<noeval>");
  xmlXPathFreeObject (obj);
  xmlXPathFreeContext (ctx);
  xmlFreeDoc (doc);
  return r;
}

#define CHECK_XP(xml, path, want)                                       \
  do {                                                                  \
    CLEANUP_FREE char *v_ = xp ((xml), (path));                         \
    if (strcmp (v_, (want)) != 0) {                                     \
      fprintf (stderr, "%s:%d: FAIL: %s is \"%s\", expected \"%s\"\n",  \
               __FILE__, __LINE__, (path), v_, (want));                 \
      failures++;                                                       \
    }                                                                   \
  } while (0)

static const char *const two_disks[] = { "sda", "vdb", NULL };

/* A remote domain's job serves on TCP, with TLS when asked. */
static void
test_backup_xml_tcp (void)
{
  struct vb_backup_spec s = {
    .tcp_addr = "10.0.0.2", .tcp_port = 10900, .tls = true,
    .scratch_dir = "/var/tmp/virtback.x", .disks = two_disks,
  };
  CLEANUP_FREE char *x = vb_backup_xml (&s);
  CLEANUP_FREE char *y = NULL;

  REQUIRE (x != NULL);
  CHECK_XP (x, "/domainbackup/server/@transport", "tcp");
  CHECK_XP (x, "/domainbackup/server/@name", "10.0.0.2");
  CHECK_XP (x, "/domainbackup/server/@port", "10900");
  CHECK_XP (x, "/domainbackup/server/@tls", "yes");
  CHECK_XP (x, "count(/domainbackup/server/@socket)", "0");
  s.tls = false;
  REQUIRE ((y = vb_backup_xml (&s)) != NULL);
  CHECK_XP (y, "count(/domainbackup/server/@tls)", "0");
}

static void
test_backup_xml_full (void)
{
  struct vb_backup_spec s = {
    .socket_path = "/run/vb.x/nbd.sock", .scratch_dir = "/run/vb.x",
    .disks = two_disks,
  };
  CLEANUP_FREE char *x = vb_backup_xml (&s);

  CHECK (x != NULL);
  if (x == NULL)
    return;
  CHECK_XP (x, "name(/*)", "domainbackup");
  CHECK_XP (x, "/domainbackup/@mode", "pull");
  CHECK_XP (x, "count(/domainbackup/incremental)", "0");
  CHECK_XP (x, "/domainbackup/server/@transport", "unix");
  CHECK_XP (x, "/domainbackup/server/@socket", "/run/vb.x/nbd.sock");
  CHECK_XP (x, "count(/domainbackup/disks/disk)", "2");
  CHECK_XP (x, "/domainbackup/disks/disk[1]/@name", "sda");
  CHECK_XP (x, "/domainbackup/disks/disk[1]/@backup", "yes");
  CHECK_XP (x, "/domainbackup/disks/disk[1]/@type", "file");
  CHECK_XP (x, "count(/domainbackup/disks/disk/@backupmode)", "0");
  CHECK_XP (x, "/domainbackup/disks/disk[1]/scratch/@file",
            "/run/vb.x/scratch-sda.qcow2");
  CHECK_XP (x, "/domainbackup/disks/disk[2]/@name", "vdb");
  CHECK_XP (x, "/domainbackup/disks/disk[2]/scratch/@file",
            "/run/vb.x/scratch-vdb.qcow2");
}

static void
test_backup_xml_incremental (void)
{
  static const char *const raw[] = { "vdb", NULL };
  struct vb_backup_spec s = {
    .socket_path = "/tmp/a&b'c/s", .scratch_dir = "/tmp/a&b'c",
    .incremental = "virtnbdbackup.3", .new_checkpoint = "virtnbdbackup.4",
    .disks = two_disks, .nobitmap_disks = raw,
  };
  CLEANUP_FREE char *x = vb_backup_xml (&s);
  CLEANUP_FREE char *c = vb_checkpoint_create_xml (&s);

  CHECK (x != NULL && c != NULL);
  if (x == NULL || c == NULL)
    return;
  CHECK_XP (x, "/domainbackup/incremental", "virtnbdbackup.3");
  CHECK_XP (x, "/domainbackup/server/@socket", "/tmp/a&b'c/s");
  CHECK_XP (x, "count(/domainbackup/disks/disk[1]/@backupmode)", "0");
  CHECK_XP (x, "/domainbackup/disks/disk[2]/@backupmode", "full");
  CHECK_XP (x, "/domainbackup/disks/disk[2]/scratch/@file",
            "/tmp/a&b'c/scratch-vdb.qcow2");

  CHECK_XP (c, "name(/*)", "domaincheckpoint");
  CHECK_XP (c, "/domaincheckpoint/name", "virtnbdbackup.4");
  CHECK_XP (c, "count(/domaincheckpoint/disks/disk)", "1");
  CHECK_XP (c, "/domaincheckpoint/disks/disk/@name", "sda");
  CHECK_XP (c, "/domaincheckpoint/disks/disk/@checkpoint", "bitmap");
}

static void
test_spec_errors (void)
{
  static const char *const none[] = { NULL };
  struct vb_backup_spec s = { .socket_path = "/s", .disks = none };
  char *x;

  CHECK (vb_backup_xml (&s) == NULL);
  s.disks = two_disks;
  CHECK (vb_checkpoint_create_xml (&s) == NULL);   /* no checkpoint name */
  s.socket_path = NULL;
  CHECK (vb_backup_xml (&s) == NULL);
  CHECK (strstr (vb_get_error (), "socket") != NULL);
  /* libvirt 9.0 fails without scratch files, so one is required. */
  s.socket_path = "/s";
  CHECK (vb_backup_xml (&s) == NULL);
  CHECK (strstr (vb_get_error (), "scratch") != NULL);
  s.scratch_dir = "/d";
  x = vb_backup_xml (&s);
  CHECK (x != NULL);
  if (x)
    CHECK_XP (x, "count(//scratch)", "2");
  free (x);
}

static void
test_xml_string (void)
{
  static const char cp[] =
    "<domaincheckpoint><name>vb.1</name><creationTime>1795314665</creationTime>"
    "<disks><disk name='sda' size='10000000000'/><disk name='sdb' size='5'/>"
    "</disks></domaincheckpoint>";
  CLEANUP_FREE char *name = vb_checkpoint_name_from_xml (cp);
  CLEANUP_FREE char *sum = vb_xml_string (cp, "sum(//disk/@size)");
  CLEANUP_FREE char *t = vb_xml_string (cp, "/domaincheckpoint/creationTime");

  CHECK_STR (name, "vb.1");
  CHECK_STR (sum, "10000000005");
  CHECK_STR (t, "1795314665");
  CHECK (vb_xml_string (cp, "/domaincheckpoint/parent") == NULL);
  CHECK (vb_checkpoint_name_from_xml ("<domaincheckpoint/>") == NULL);
  CHECK (vb_checkpoint_name_from_xml ("not xml") == NULL);
}

/* Names are escaped, never markup; the domain is an element, not text. */
static void
test_offline_checkpoint_xml (void)
{
  struct vb_domain d = { .xml = (char *) sample };
  static const char *const sda[] = { "sda", NULL };
  CLEANUP_FREE char *x = NULL, *bad = NULL;

  CHECK (vb_parse_disks (sample, false, &d.disks, &d.ndisks) == 0);
  x = vb_offline_checkpoint_xml (&d, "p]]>&<'\".1", "a&b.0", sda);
  CHECK (x != NULL);
  if (x) {
    CHECK_XP (x, "/domaincheckpoint/name", "p]]>&<'\".1");
    CHECK_XP (x, "/domaincheckpoint/parent/name", "a&b.0");
    CHECK_XP (x, "count(/domaincheckpoint/*)", "5");
    CHECK_XP (x, "count(/domaincheckpoint/disks/disk)", "7");
    CHECK_XP (x, "/domaincheckpoint/disks/disk[1]/@bitmap", "p]]>&<'\".1");
    CHECK_XP (x, "/domaincheckpoint/disks/disk[1]/@checkpoint", "bitmap");
    CHECK_XP (x, "/domaincheckpoint/disks/disk[2]/@checkpoint", "no");
    CHECK_XP (x, "count(/domaincheckpoint/disks/disk[2]/@bitmap)", "0");
    CHECK_XP (x, "/domaincheckpoint/domain/name", "t");
    CHECK_XP (x, "count(/domaincheckpoint/domain/devices/disk)", "7");
  }
  d.xml = (char *) "<domain><name>t</name>";
  bad = vb_offline_checkpoint_xml (&d, "c.0", NULL, sda);
  CHECK (bad == NULL);
  CHECK (strstr (vb_get_error (), "domain XML") != NULL);
  vb_disks_free (d.disks, d.ndisks);
}

#define CP(name, t, uuid)                                               \
  "<domaincheckpoint><name>" name "</name><parent><name>vb.0</name>"    \
  "</parent><creationTime>" t "</creationTime><disks><disk name='sda' " \
  "checkpoint='bitmap' bitmap='" name "'/></disks><domain type='kvm'>"  \
  "<name>vm</name><uuid>" uuid "</uuid></domain></domaincheckpoint>"
#define U1 "6f1d3a0c-27e5-4f5b-9d7e-0a4c2b1e9f01"
#define U2 "6f1d3a0c-27e5-4f5b-9d7e-0a4c2b1e9f02"

/* Two checkpoints of one name differ by creation time or domain; libvirt
 * adding sizes or other elements to its XML changes nothing. */
static void
test_checkpoint_same (void)
{
  static const char saved[] = CP ("vb.1", "1795314665", U1);
  static const char sized[] =
    "<domaincheckpoint><name>vb.1</name><creationTime>1795314665"
    "</creationTime><disks><disk name='sda' checkpoint='bitmap' "
    "bitmap='vb.1' size='65536'/></disks><domain><uuid>" U1 "</uuid>"
    "</domain></domaincheckpoint>";
  static const char bare[] =
    "<domaincheckpoint><name>vb.1</name><creationTime>1795314665"
    "</creationTime></domaincheckpoint>";

  CHECK (vb_checkpoint_same (saved, saved) == 1);
  CHECK (vb_checkpoint_same (saved, sized) == 1);
  CHECK (vb_checkpoint_same (bare, saved) == 1);
  CHECK (vb_checkpoint_same (saved, CP ("vb.1", "1795314666", U1)) == 0);
  CHECK (strstr (vb_get_error (), "libvirt's was created ") != NULL);
  CHECK (strstr (vb_get_error (), ", the chain's ") != NULL);
  CHECK (vb_checkpoint_same (saved, CP ("vb.1", "1795314665", U2)) == 0);
  CHECK (strstr (vb_get_error (), U2) != NULL);
  CHECK (vb_checkpoint_same (saved, CP ("vb.2", "1795314665", U1)) == 0);
  CHECK (vb_checkpoint_same (saved, "<domaincheckpoint><name>vb.1</name>"
                             "</domaincheckpoint>") == -1);
  CHECK (vb_checkpoint_same ("not xml", saved) == -1);
  CHECK (vb_checkpoint_created (saved) == 1795314665LL);
  CHECK (vb_checkpoint_created (CP ("vb.1", "17x", U1)) == -1);
}

int
main (void)
{
  test_parse_sample ();
  test_parse_bad_targets ();
  test_backup_xml_full ();
  test_backup_xml_tcp ();
  test_backup_xml_incremental ();
  test_spec_errors ();
  test_xml_string ();
  test_offline_checkpoint_xml ();
  test_checkpoint_same ();
  xmlCleanupParser ();
  return vb_test_end ("test-virt");
}
