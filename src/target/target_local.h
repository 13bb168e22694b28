/* SPDX-License-Identifier: GPL-3.0-or-later */
/* target_local.h: pieces of the directory backend shared by its files
 * (target_dir.c, lock_local.c); private to src/target/. */
#ifndef VB_TARGET_LOCAL_H
#define VB_TARGET_LOCAL_H

#include "target/target.h"

struct vb_tlock *vb_local_lock (struct vb_target *t, const char *uuid,
                                const char *label);
void vb_local_unlock (struct vb_tlock *l);
int vb_local_locked (struct vb_target *t, const char *uuid);

/* The directory backend's read side and names (dir_read.c). */
char **vb_dir_list (struct vb_target *t, const char *subdir);
char *vb_dir_read (struct vb_target *t, const char *name, size_t *len);
struct vb_rfile *vb_dir_open_read (struct vb_target *t, const char *name);
int vb_dir_stat (struct vb_target *t, const char *name,
                 struct vb_target_stat *st);
int vb_dir_remove (struct vb_target *t, const char *name);
int vb_dir_rename (struct vb_target *t, const char *from, const char *to);
int vb_dir_mkdir (struct vb_target *t, const char *name);
/* Make the target's directory if it is missing yet. */
int vb_dir_ensure (struct vb_target *t);

#endif
