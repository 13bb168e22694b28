/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Unit tests for the qemu-img side of nbd/qemu_nbd.h: the parsed image
 * info (from a sample of QEMU 7.2's output, and from qemu-img run for real
 * on images it made), and the bitmap and create wrappers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/test.h"
#include "nbd/qemu_nbd.h"

static const char sample[] =
  "{\n"
  "    \"virtual-size\": 67108864,\n"
  "    \"filename\": \"/img/a.qcow2\",\n"
  "    \"cluster-size\": 65536,\n"
  "    \"format\": \"qcow2\",\n"
  "    \"backing-filename\": \"base.qcow2\",\n"
  "    \"format-specific\": {\n"
  "        \"type\": \"qcow2\",\n"
  "        \"data\": {\n"
  "            \"compat\": \"1.1\",\n"
  "            \"compression-type\": \"zstd\",\n"
  "            \"lazy-refcounts\": true,\n"
  "            \"data-file\": \"/img/a.raw\",\n"
  "            \"bitmaps\": [\n"
  "                { \"flags\": [ \"in-use\", \"auto\" ], \"name\": \"vb.0\","
  " \"granularity\": 65536 },\n"
  "                { \"flags\": [ ], \"name\": \"vb.1\","
  " \"granularity\": 65536 }\n"
  "            ]\n"
  "        }\n"
  "    },\n"
  "    \"dirty-flag\": false\n"
  "}\n";

static void
test_parse (void)
{
  struct vb_image_info *i = vb_image_info_parse (sample, strlen (sample), "s");
  const struct vb_image_bitmap *b;

  REQUIRE (i != NULL);
  CHECK (i->json_len == strlen (sample) && !strcmp (i->json, sample));
  CHECK_STR (i->format, "qcow2");
  CHECK (i->virtual_size == 67108864 && i->cluster_size == 65536);
  CHECK_STR (i->backing_file, "base.qcow2");
  CHECK_STR (i->compat, "1.1");
  CHECK_STR (i->compression_type, "zstd");
  CHECK_STR (i->data_file, "/img/a.raw");
  CHECK (i->lazy_refcounts == 1);
  CHECK (i->nbitmaps == 2);
  b = vb_image_info_bitmap (i, "vb.0");
  CHECK (b && b->in_use && b->enabled);
  b = vb_image_info_bitmap (i, "vb.1");
  CHECK (b && !b->in_use && !b->enabled);
  CHECK (vb_image_info_bitmap (i, "vb.2") == NULL);
  vb_image_info_free (i);

  i = vb_image_info_parse ("{\"format\": \"raw\", \"virtual-size\": 512}", 38,
                           "r");
  REQUIRE (i != NULL);
  CHECK_STR (i->format, "raw");
  CHECK (i->virtual_size == 512 && i->cluster_size == 0);
  vb_image_info_free (i);
  i = vb_image_info_parse ("{\"virtual-size\": \"1\"}", 21, "v");
  REQUIRE (i != NULL);
  CHECK (i->virtual_size == -1 && !i->format);
  CHECK (!i->compat && !i->backing_file && !i->data_file && !i->nbitmaps);
  CHECK (i->lazy_refcounts == -1);
  vb_image_info_free (i);

  CHECK_ERR (vb_image_info_parse ("[1]", 3, "x.json") == NULL,
             "x.json: cannot parse qemu-img info");
  CHECK_ERR (vb_image_info_parse ("{\"format\"", 9, "y") == NULL,
             "cannot parse");
}

/* qemu-img is installed with QEMU: run it for real on images it made. */
static void
test_real (void)
{
  char dir[] = "/tmp/test-qemu.XXXXXX";
  char img[64], raw[64];
  struct vb_image_info *i;

  CHECK_ERR (vb_qemu_img_info ("relative.qcow2") == NULL, "not an absolute");
  CHECK (vb_qemu_img_info ("-h") == NULL);
  CHECK (vb_qemu_img_create ("rel.raw", "raw", NULL, 4096) == -1);
  REQUIRE (mkdtemp (dir) != NULL);
  snprintf (img, sizeof img, "%s/d.qcow2", dir);
  snprintf (raw, sizeof raw, "%s/d.raw", dir);
  CHECK (vb_qemu_img_create (img, "qcow2", "compat=1.1,cluster_size=65536",
                             1 << 20) == 0);
  CHECK (vb_qemu_img_bitmap ("--add", img, "vb.0") == 0);
  i = vb_qemu_img_info (img);
  REQUIRE (i != NULL);
  CHECK (strstr (i->json, "\"virtual-size\": 1048576") != NULL);
  CHECK_STR (i->format, "qcow2");
  CHECK (i->virtual_size == 1 << 20 && i->cluster_size == 65536);
  CHECK_STR (i->compat, "1.1");
  CHECK (i->nbitmaps == 1 && i->bitmaps[0].enabled && !i->bitmaps[0].in_use);
  vb_image_info_free (i);
  CHECK (vb_qemu_img_bitmap ("--remove", img, "vb.0") == 0);
  CHECK (vb_qemu_img_bitmap ("--remove", img, "vb.0") == -1);
  i = vb_qemu_img_info (img);
  CHECK (i && i->nbitmaps == 0);
  vb_image_info_free (i);
  CHECK (vb_qemu_img_create (raw, "raw", "", 8192) == 0);
  i = vb_qemu_img_info (raw);
  CHECK (i && !strcmp (i->format, "raw") && i->virtual_size == 8192);
  vb_image_info_free (i);
  unlink (img);
  unlink (raw);
  CHECK (vb_qemu_img_info (img) == NULL);
  CHECK (strstr (vb_get_error (), "qemu-img failed") != NULL);
  CHECK (strstr (vb_get_error (), "No such file") != NULL);
  rmdir (dir);
}

int
main (void)
{
  test_parse ();
  test_real ();
  return vb_test_end ("test-qemu");
}
