/* SPDX-License-Identifier: GPL-3.0-or-later */
/* map.h: a backup point served as live disks over NBD.
 *
 * Contract: vb_map_start() checks the point first (the chain, the disks,
 * every file up to the point, the way a restore does), then starts nbdkit
 * with virtback's plugin (plugin.c) on a unix socket or a TCP address and
 * returns once it serves, with one NBD URI per disk.  Read-only unless
 * WRITABLE: then nbdkit's cow filter takes writes into a temporary
 * overlay, dropped when the server stops; the backup's files are never
 * written.  With OVERLAY (one disk, WRITABLE), the writes go to the qcow2
 * file OVERLAY instead, kept at exit: its backing file is the point served
 * read-only on OVERLAY.sock (nbd+unix:///DISK?socket=OVERLAY.sock), and
 * qemu-nbd serves OVERLAY where the caller asked (overlay.c); a failed
 * start removes it again.  vb_map_run() relays the server's log lines and returns when
 * CANCEL is set (0) or the server died (-1).  vb_map_stop() stops nbdkit
 * and removes what the map made (its private directory, the socket) on
 * every path.  Never prints: log lines go to the caller's callback.
 *
 * DETACHED (instant recovery, where a VM's disks are backed by the map):
 * nbdkit runs in its own session, not tied to our life, so that a killed
 * virtback leaves the VM's backing serving.  Its private directory holds
 * its pid file and log until vb_map_stop(); vb_map_attach() adopts such a
 * server again from that directory, in a later run.
 *
 * Security: a unix socket is made mode 0660, group libvirt-qemu (QEMU may
 * use it as a disk); TCP without TLS carries guest data in the clear, so
 * the caller warns.  With TLS, nbdkit requires it of every client.
 */
#ifndef VB_MAP_H
#define VB_MAP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct vb_map_opts {
  const char *input;           /* backup directory */
  const char *until;           /* point; NULL: newest */
  const char *disk;            /* one disk; NULL: all */
  const char *socket;          /* unix socket path, or NULL */
  const char *listen;          /* "ADDR:PORT", or NULL */
  bool tls;
  const char *tls_dir;         /* x509 directory; NULL: /etc/pki/qemu */
  bool writable;
  const char *overlay;         /* writable: keep the writes in this qcow2 */
  const char *plugin;          /* the plugin .so; NULL: found beside us */
  bool detached;               /* outlives us (see above); paths absolute */
};

struct vb_map {
  pid_t pid;
  char *rundir;                /* private: pid file, log */
  char *socket;                /* the socket made, removed at stop */
  char **uris;                 /* one per disk, NULL-terminated */
  char **disks;
  int logfd;
  off_t logpos;
  bool detached;               /* pid is not our child */
  pid_t keeper;                /* detached: nbdkit's parent, if ours */
  uint64_t size;               /* virtual size of the first disk */
  char *overlay, *backsock;    /* --overlay: the file, nbdkit's socket */
  pid_t qpid;                  /* --overlay: qemu-nbd serving the file */
  bool overlay_made, overlay_kept;
};

int vb_map_start (const struct vb_map_opts *o, struct vb_map *m);
int vb_map_run (struct vb_map *m, volatile sig_atomic_t *cancel,
                void (*line) (void *op, const char *text), void *op);
void vb_map_stop (struct vb_map *m);
/* Relay new log lines; 0 while the server runs, -1 once it is gone. */
int vb_map_poll (struct vb_map *m, void (*line) (void *op, const char *text),
                 void *op);
/* Adopt the detached server of private directory RUNDIR serving on
 * SOCKET: 0 if it still serves, -1 (M cleared) if it is gone. */
int vb_map_attach (const char *rundir, const char *socket, struct vb_map *m);

#endif
