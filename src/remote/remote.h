/* SPDX-License-Identifier: GPL-3.0-or-later */
/* remote.h: the other host of a qemu+ssh:// libvirt URI, and everything
 * virtback does there besides libvirt: QEMU's image tools run over ssh
 * (qemu-img, a qemu-nbd serving on TCP) and plain file steps (a private
 * scratch directory, the directories and renames of a restore).
 *
 * Contract:
 * - Local or remote is decided by the URI alone (vb_remote_parse): a URI
 *   that names a host is remote, whatever that host is; no hostname is
 *   ever compared.  ssh runs with the URI's user, port, ?keyfile=,
 *   ?no_verify=1 and ?command= (a program run in place of ssh, with ssh's
 *   arguments), as libvirt's own ssh transport does.
 * - The vb_host_* calls take a remote (NULL: this host) and do the same
 *   thing on either side, so callers have one path; a remote one never
 *   touches a local file of that name.
 * - A remote qemu-nbd (vb_rnbd_start) serves on TCP at ADDR:PORT, the
 *   first free port of the range, and is stopped on every exit path: by
 *   vb_rnbd_stop(); when virtback dies, by ssh's end (the remote side
 *   reads its stdin to EOF); when the link is cut, by the remote side
 *   itself once no keepalive line came for the timeout.
 * - Every remote failure names the host and says what to do.
 * Errors: -1 / NULL after vb_set_error(). */
#ifndef VB_REMOTE_H
#define VB_REMOTE_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

struct vb_image_info;

struct vb_remote {
  char *host;                  /* as in the URI */
  char *user;                  /* NULL: ssh's default */
  int port;                    /* 0: ssh's default */
  char *keyfile;               /* ?keyfile= */
  char *command;               /* ?command=: run instead of "ssh" */
  bool no_verify;              /* ?no_verify=1 */
  bool ssh;                    /* the transport is ssh */
  int timeout;                 /* seconds without an answer: give up */
  /* One ssh connection that every later session rides on (OpenSSH's
   * ControlMaster): a key exchange per command would cost about a second
   * each on a busy host.  Set by vb_remote_session_start. */
  char *control;               /* the master's socket, or NULL */
  pid_t master;
};

#define VB_REMOTE_TIMEOUT 60

/* 1 and R filled when URI names a host, 0 for a local URI (R zeroed), -1
 * when URI does not parse. */
int vb_remote_parse (const char *uri, struct vb_remote *r);
/* Also ends the session (vb_remote_session_end). */
void vb_remote_clear (struct vb_remote *r);
/* Start opening the shared connection to R's host (a child of ours: it
 * dies with us) without waiting for it; the first command waits.  When it
 * cannot be opened every command connects on its own, and the first one
 * reports why.  Always 0. */
int vb_remote_session_start (struct vb_remote *r);
void vb_remote_session_end (struct vb_remote *r);
/* A malloc'd copy without the session (NULL on failure, with an error). */
struct vb_remote *vb_remote_dup (const struct vb_remote *r);
void vb_remote_free (struct vb_remote *r);

/* "P" or "P-Q" (1-65535, P <= Q) into *LO and *HI; -1 otherwise. */
int vb_parse_port_range (const char *s, int *lo, int *hi);

/* ARGV joined into one command line for a POSIX shell, each word quoted
 * (exposed for unit tests). */
char *vb_shell_join (const char *const *argv);
/* The ssh command line that runs CMD (one shell line) on R's host,
 * NULL-terminated, malloc'd (exposed for unit tests). */
char **vb_remote_ssh_argv (const struct vb_remote *r, const char *cmd);
/* The ssh command line of the shared connection's master on PATH. */
char **vb_remote_master_argv (const struct vb_remote *r, const char *path);

/* Run ARGV on R's host; its stdout (NUL-terminated, *LEN bytes) when it
 * exits 0.  R must use ssh. */
char *vb_remote_output (const struct vb_remote *r, const char *const *argv,
                        size_t *len);
int vb_remote_run (const struct vb_remote *r, const char *const *argv);

/* ---- either host (R NULL: this one) ---- */
struct vb_image_info *vb_host_img_info (const struct vb_remote *r,
                                        const char *path);
int vb_host_img_bitmap (const struct vb_remote *r, const char *op,
                        const char *path, const char *name);
int vb_host_img_create (const struct vb_remote *r, const char *path,
                        const char *format, const char *options,
                        uint64_t size);

/* ---- files on the remote host ---- */
/* Remove DIR's scratch-*.qcow2 files, then DIR (a virtback.XXXXXX) of a
 * run that could not (vb_rdir_* below makes and holds a run's own). */
int vb_remote_rmdtemp (const struct vb_remote *r, const char *dir);
/* mkdir -p DIR (mode 0755) and its absolute, resolved path. */
char *vb_remote_mkdir_realpath (const struct vb_remote *r, const char *dir);
/* 1 if PATH exists there, 0 if not, -1 when the host cannot tell. */
int vb_remote_exists (const struct vb_remote *r, const char *path);
int vb_remote_rename (const struct vb_remote *r, const char *from,
                      const char *to);
int vb_remote_unlink (const struct vb_remote *r, const char *path);
/* Write LEN bytes of DATA to PATH there, mode 0600, atomically (a
 * temporary name, sync, rename). */
int vb_remote_put (const struct vb_remote *r, const char *path,
                   const char *data, size_t len);

/* ---- a qemu-nbd on the remote host ---- */
struct vb_rnbd_opts {
  const char *image, *format;
  const char *export;
  const char *bitmap;          /* qemu:dirty-bitmap:BITMAP, or NULL */
  bool readonly;
  const char *addr;            /* listen address there */
  int port_lo, port_hi;        /* the first free port of these */
  const char *tls_dir;         /* remote x509 directory, NULL: plain */
  const char *const *extra;    /* more qemu-nbd options, or NULL */
  volatile sig_atomic_t *cancel;
};

struct vb_rnbd {
  pid_t pid;                   /* the local ssh */
  int in;                      /* its stdin: keepalive lines, "stop" */
  int out;                     /* its stdout until it said "ready" */
  int status;                  /* ssh's wait status once reaped, -1 killed */
  bool inited;
  int port;                    /* where it serves */
  int timeout;
  pthread_t ping;
  bool pinging;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stopping;
  /* vb_rdir_*: the session belongs to its thread (ping), which starts
   * ssh once the shared connection is up, and ends it */
  bool owned, started, grouped, spawned;
  const struct vb_remote *host;
  char **argv;
  struct vb_error start_err;
};

int vb_rnbd_start (const struct vb_remote *r, struct vb_rnbd *q,
                   const struct vb_rnbd_opts *o);
/* Safe on a zeroed or stopped struct. */
void vb_rnbd_stop (struct vb_rnbd *q);

/* A job's private directory there: mkdtemp of BASE/virtback.XXXXXX, mode
 * 0770, group GID, held by one session (Q) that removes it with its
 * scratch-*.qcow2 files on vb_rdir_stop, when virtback ends, or when the
 * link is cut (no keepalive for the timeout).
 * - vb_rdir_start only starts the session, on a thread of its own that
 *   waits for the shared connection (R must outlive Q), so it can be
 *   called before libvirt has connected; the directory is made at once,
 *   mode 0700.
 * - vb_rdir_group sends QEMU's group once the caller knows it (the domain's
 *   XML); the directory becomes 0770 of that group.  Only the first call
 *   sends it.
 * - vb_rdir_wait gives the path (malloc'd) once the directory is there,
 *   or NULL with the error (the session stopped).
 * - vb_rdir_stop is 0 once it is gone (also when it was never made, or
 *   the group never sent), -1 with an error. */
int vb_rdir_start (const struct vb_remote *r, struct vb_rnbd *q,
                   const char *base);
int vb_rdir_group (const struct vb_remote *r, struct vb_rnbd *q, gid_t gid);
char *vb_rdir_wait (const struct vb_remote *r, struct vb_rnbd *q,
                    const char *base, volatile sig_atomic_t *cancel);
int vb_rdir_stop (struct vb_rnbd *q);
/* Wait until the shared connection is up (or failed): 0. */
int vb_remote_wait_session (const struct vb_remote *r);
/* Is the shared connection still being opened?  (A check that does not
 * wait, for a caller that may be asked to stop meanwhile.) */
bool vb_remote_session_pending (const struct vb_remote *r);

#endif
