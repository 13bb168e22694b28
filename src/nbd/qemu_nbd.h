/* SPDX-License-Identifier: GPL-3.0-or-later */
/* qemu_nbd.h: QEMU's image tools, the one place that runs them: a
 * qemu-nbd process serving one image on a unix socket (qemu_nbd.c), and
 * qemu-img info, bitmap and create (qemu_img.c).
 *
 * Why one unit under this name: backup and restore already reach qemu-nbd
 * through this header, and both tools are separate QEMU processes run
 * through common/proc.h, so qemu-img joins it here rather than in a
 * unit of its own (the name stays until the project's rename pass).
 *
 * Contract:
 * - vb_qemu_nbd_start() returns once the socket accepts connections (or
 *   fails with qemu-nbd's own message).  The process dies with us
 *   (PR_SET_PDEATHSIG) and vb_qemu_nbd_stop() always reaps it and removes
 *   the socket and log.  The caller owns the directory.
 * - `qemu-img info` is parsed here only: struct vb_image_info holds every
 *   fact a caller uses, and the JSON text exactly as qemu-img printed it
 *   (the side file <disk>.<ident>.qcow.json keeps it byte for byte).
 * - Image paths must be absolute: a relative one could start with '-' or
 *   read as a protocol ("nbd:...").
 * Errors: -1 / NULL with vb_set_error() naming the image. */
#ifndef VB_QEMU_NBD_H
#define VB_QEMU_NBD_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct vb_qemu_nbd {
  pid_t pid;
  char *sock;
  char *log;
};

struct vb_qemu_nbd_opts {
  const char *image, *format;
  const char *sock;            /* socket path to create */
  const char *export;          /* export name */
  const char *bitmap;          /* expose qemu:dirty-bitmap:BITMAP, or NULL */
  bool readonly;
  const char *const *extra;    /* more qemu-nbd options, or NULL */
  volatile sig_atomic_t *cancel;
};

int vb_qemu_nbd_start (struct vb_qemu_nbd *q, const struct vb_qemu_nbd_opts *o);
void vb_qemu_nbd_stop (struct vb_qemu_nbd *q);

/* ---- qemu-img ---- */

struct vb_image_bitmap {
  char *name;
  bool in_use;                 /* flag "in-use": not closed cleanly */
  bool enabled;                /* flag "auto": tracks writes */
};

struct vb_image_info {
  char *json;                  /* qemu-img's text, NUL-terminated */
  size_t json_len;
  char *format;                /* "qcow2", "raw", ... */
  int64_t virtual_size;        /* -1: not reported */
  int64_t cluster_size;        /* 0: none reported */
  char *backing_file;          /* "backing-filename", or NULL */
  /* qcow2 only (NULL / -1 otherwise): */
  char *compat;                /* "1.1", "0.10" */
  int lazy_refcounts;          /* 0, 1, or -1 when not reported */
  char *compression_type;      /* "zlib", "zstd" */
  char *data_file;             /* external data file, or NULL */
  struct vb_image_bitmap *bitmaps;
  size_t nbitmaps;
};

/* qemu-img info -U --output json of PATH (absolute), parsed. */
struct vb_image_info *vb_qemu_img_info (const char *path);
/* Parse LEN bytes of qemu-img info JSON (e.g. a saved .qcow.json); WHAT
 * names it in errors. */
struct vb_image_info *vb_image_info_parse (const char *json, size_t len,
                                           const char *what);
void vb_image_info_free (struct vb_image_info *info);
void vb_cleanup_image_info (struct vb_image_info **p);
#define CLEANUP_IMAGE_INFO __attribute__((cleanup (vb_cleanup_image_info)))

/* Bitmap NAME of INFO, or NULL. */
const struct vb_image_bitmap *vb_image_info_bitmap
  (const struct vb_image_info *info, const char *name);

/* qemu-img bitmap OP ("--add" adds it enabled, "--remove") NAME in the
 * qcow2 image PATH. */
int vb_qemu_img_bitmap (const char *op, const char *path, const char *name);
/* qemu-img create -f FORMAT [-o OPTIONS] PATH SIZE (OPTIONS NULL or ""
 * for none). */
int vb_qemu_img_create (const char *path, const char *format,
                        const char *options, uint64_t size);

#endif
