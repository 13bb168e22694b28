/* SPDX-License-Identifier: GPL-3.0-or-later */
/* internal.h: the kept overlay of virtback map (overlay.c), for map.c
 * only.  Same error convention: -1 after vb_set_error(). */
#ifndef VB_MAP_INTERNAL_H
#define VB_MAP_INTERNAL_H

#include <stdbool.h>

struct vb_map;
struct vb_map_opts;

/* Check O's overlay request against M's disks (one) and the file (new);
 * sets M's overlay and backing socket paths. */
int vb_map_overlay_prepare (const struct vb_map_opts *o, struct vb_map *m);
/* With nbdkit serving the point on M's backing socket: create the overlay
 * and serve it with qemu-nbd on O's socket or ADDR:PORT. */
int vb_map_overlay_serve (const struct vb_map_opts *o, struct vb_map *m,
                          const char *addr, const char *port);
/* False once qemu-nbd ended by itself. */
bool vb_map_overlay_serving (struct vb_map *m);
/* Stop qemu-nbd and remove its files; the overlay stays once it served. */
void vb_map_overlay_stop (struct vb_map *m);

#endif
