/* SPDX-License-Identifier: GPL-3.0-or-later */
/* virt.h: the libvirt control plane.  All libvirt calls live here.
 *
 * Contract: turns a domain into a list of disks, manages this tool's
 * checkpoints, starts and always ends pull-mode backup jobs, and freezes and
 * thaws the guest.  It never prints (a warning is returned through
 * vb_get_error() after a return of 1 where documented) and never touches the
 * backup directory: callers hand it XML strings and get XML strings back.
 * Errors: -1 / NULL with vb_set_error() carrying libvirt's message.
 *
 * Ownership: struct vb_domain owns its virConnect/virDomain and its disks;
 * vb_domain_close() releases all.  Returned strings are malloc'd.
 */
#ifndef VB_VIRT_H
#define VB_VIRT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum vb_disk_skip {
  VB_DISK_BACKUP = 0,          /* back it up */
  VB_DISK_SKIP_DEVICE,         /* cdrom, floppy, lun */
  VB_DISK_SKIP_RAW,            /* raw format without --raw */
  VB_DISK_SKIP_NOSOURCE,       /* no source file/volume (empty drive) */
};

struct vb_disk {
  char *target;                /* "sda"; validated: no '/' and not ".." */
  char *device;                /* "disk", "cdrom", "floppy", "lun" */
  char *format;                /* driver type: "qcow2", "raw" */
  char *path;                  /* source file or block device, may be NULL */
  char *alias;                 /* qdev id e.g. "sata0-0-0", may be NULL */
  enum vb_disk_skip skip;
};

struct vb_domain {
  char *name;
  char *uuid;                  /* string form */
  bool running;
  char *xml;                   /* domain XML, flags 0: no secrets, live if running */
  struct vb_disk *disks;
  size_t ndisks;
  void *conn;                  /* virConnectPtr */
  void *dom;                   /* virDomainPtr */
  /* The host of a URI that names one (remote/remote.h), else NULL: its
   * images are reached over ssh, never by a local path. */
  struct vb_remote *remote;
};

/* Connect to URI (NULL: "qemu:///system") and look up NAME.  Parses the disks
 * from the XML; raw disks get VB_DISK_SKIP_RAW unless INCLUDE_RAW.
 * Unknown domain: error "domain 'x' does not exist". */
struct vb_domain *vb_domain_open (const char *uri, const char *name,
                                  bool include_raw);
/* vb_domain_open in two halves, for a caller that starts work on a remote
 * host while libvirt connects: vb_domain_new sets NAME and, for a URI
 * naming a host, D->remote with its shared ssh connection starting (no
 * libvirt yet); vb_domain_connect (the same URI) connects, looks NAME up
 * and reads the XML.  After a failed connect only vb_domain_close. */
struct vb_domain *vb_domain_new (const char *uri, const char *name);
int vb_domain_connect (struct vb_domain *d, const char *uri,
                       bool include_raw);
/* Seconds without an answer from a remote libvirt before its connection
 * is dropped (libvirt's keepalive, run on an event loop thread of ours),
 * and the timeout of the ssh steps; default 60.  Set before opening. */
void vb_virt_set_timeout (int seconds);
/* The flag a signal sets (NULL: none): the wait for a remote connection
 * (bounded by the timeout) ends early when it is set. */
void vb_virt_set_cancel (volatile sig_atomic_t *cancel);
int vb_virt_get_timeout (void);
/* Open URI; a remote one with keepalive (above).  Internal to src/virt. */
void *vb_virt_connect (const char *uri);
void vb_domain_close (struct vb_domain *d);
/* Is the connection to libvirt still up?  A remote one is dropped by
 * the keepalive once its host stopped answering. */
bool vb_domain_reachable (struct vb_domain *d);
/* Re-read the running state. */
int vb_domain_refresh (struct vb_domain *d);
/* Parse disks out of a domain XML (exposed for unit tests). */
int vb_parse_disks (const char *xml, bool include_raw,
                    struct vb_disk **disks, size_t *ndisks);
void vb_disks_free (struct vb_disk *disks, size_t n);

/* ---- checkpoints ---- */
/* Names of all checkpoints of the domain, oldest first (by creation time),
 * as a NULL-terminated malloc'd vector. */
char **vb_checkpoint_list (struct vb_domain *d);
/* Checkpoint XML (with VIR_DOMAIN_CHECKPOINT_XML_SECURE? no: plain) */
char *vb_checkpoint_xml (struct vb_domain *d, const char *name);
/* Delete a checkpoint (and its bitmaps). METADATA_ONLY keeps bitmaps. */
int vb_checkpoint_delete (struct vb_domain *d, const char *name,
                          bool metadata_only);
/* Redefine a checkpoint from saved XML (VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE
 * | _REDEFINE_VALIDATE when VALIDATE).  Fails if its bitmap is gone. */
int vb_checkpoint_redefine (struct vb_domain *d, const char *xml,
                            bool validate);
bool vb_checkpoint_exists (struct vb_domain *d, const char *name);

/* ---- backup job ---- */
struct vb_backup_spec {
  const char *socket_path;     /* unix socket QEMU binds (dir is 0770) */
  /* Or, when set, TCP: QEMU listens on TCP_ADDR:TCP_PORT, with x509 (the
   * host's QEMU TLS set-up, libvirt's tls='yes') when TLS. */
  const char *tcp_addr;
  int tcp_port;
  bool tls;
  const char *scratch_dir;     /* scratch qcow2 files go here (required) */
  const char *incremental;     /* checkpoint to start from, NULL: full */
  const char *new_checkpoint;  /* checkpoint to create, NULL: none */
  const char *const *disks;    /* targets to back up, NULL-terminated */
  /* Subset of DISKS that cannot carry a bitmap (raw with --raw):
   * always copied in full (backupmode='full') and left out of the new
   * checkpoint.  NULL: none. */
  const char *const *nobitmap_disks;
  /* The new checkpoint's <description>, NULL: none.  A pull job's carry
   * VB_CHECKPOINT_OF_JOB, so that backups tell them from leftovers. */
  const char *description;
};
#define VB_CHECKPOINT_OF_JOB "virtback job"
/* Is checkpoint NAME of D one a pull job made (its description)?  1, 0,
 * -1 with an error. */
struct vb_domain;
int vb_checkpoint_of_job (struct vb_domain *d, const char *name);
/* Build the <domainbackup> and <domaincheckpoint> XML (for unit tests). */
char *vb_backup_xml (const struct vb_backup_spec *s);
char *vb_checkpoint_create_xml (const struct vb_backup_spec *s);
/* virDomainBackupBegin in pull mode.  If a job is active, the error says so
 * and mentions -k. */
int vb_backup_begin (struct vb_domain *d, const struct vb_backup_spec *s);
/* After a failed vb_backup_begin: was it QEMU finding the TCP port taken? */
bool vb_backup_port_busy (void);
/* End the job (virDomainAbortJob); safe to call when none is running.
 * Returns 0 also when there was no job. */
int vb_backup_end (struct vb_domain *d);
/* 1 if any job is active on the domain, 0 if none, -1 error. */
int vb_job_active (struct vb_domain *d);
/* Wait up to TIMEOUT_MS while a job other than a backup is active: a
 * backup begin that libvirtd still carries out for a client that died
 * shows as such, or fails the job query, until it becomes the backup job.
 * 1 if a job is active after it, 0 if none, -1 error (the query still
 * failing at the end). */
int vb_job_settle (struct vb_domain *d, int timeout_ms);

/* ---- guest agent ---- */
/* Freeze all guest filesystems.  Returns number frozen (>= 0), or -1 with
 * an error (no agent, agent not answering): caller warns and goes on. */
int vb_fsfreeze (struct vb_domain *d);
int vb_fsthaw (struct vb_domain *d);
/* Send the agent command CMD (JSON) and return its reply (malloc'd), waiting
 * at most TIMEOUT s; NULL on error, with *NOT_UP true when the agent is not
 * connected or did not answer in time. */
char *vb_agent_command (struct vb_domain *d, const char *cmd, int timeout,
                        bool *not_up);

/* ---- facts checked against libvirt 9.0 / QEMU 7.2 that shaped this unit:
 * - disks left out of <domainbackup><disks> get backup='no', and disks left
 *   out of <domaincheckpoint><disks> get checkpoint='no', so the XML lists
 *   only the chosen disks;
 * - a second virDomainBackupBegin while a job runs blocks 30 s on the
 *   domain's state lock before failing, so vb_backup_begin checks first;
 * - aborting when no job runs fails with VIR_ERR_OPERATION_INVALID;
 * - a pull backup without <scratch> fails ("argument key 'filename' must
 *   not have null value"), so vb_backup_xml requires scratch_dir;
 * - _REDEFINE_VALIDATE needs a running domain ("domain is not running"):
 *   pass VALIDATE = d->running to vb_checkpoint_redefine;
 * - vb_backup_end only aborts a backup job: another kind of job (migration,
 *   dump) is left alone and counts as "no job" (returns 0). */

/* The disk with target TARGET, or NULL. */
const struct vb_disk *vb_domain_find_disk (const struct vb_domain *d,
                                           const char *target);
/* Group QEMU runs as, for the 0770 socket/scratch directory: the DAC label
 * of the running domain ("+64055:+64055"), else group "libvirt-qemu". */
int vb_domain_qemu_gid (const struct vb_domain *d, gid_t *gid);

/* <name> of a checkpoint XML (as saved by vb_checkpoint_xml). */
char *vb_checkpoint_name_from_xml (const char *xml);

/* The running backup job's XML as libvirt completed it (exportname,
 * per-disk backupmode, the exported bitmap names); NULL on error. */
char *vb_backup_job_xml (struct vb_domain *d);

/* Text of the first node XPATH selects in XML, or the value of a string or
 * number expression such as sum(...) (malloc'd); NULL with an error when
 * XML does not parse or XPATH selects no node. */
char *vb_xml_string (const char *xml, const char *xpath);
/* Internal to src/virt: vb_set_error("CONTEXT: <libvirt's last error>"). */
void vb_virt_set_error (const char *fmt, ...)
  __attribute__((format (printf, 1, 2)));

/* ---- shut-off domains ---- */
/* State of persistent bitmap NAME in a qcow2 image: 0 missing,
 * VB_BITMAP_OK, VB_BITMAP_INCONSISTENT (flagged in-use in a stopped image:
 * QEMU did not close it cleanly), -1 error. */
#define VB_BITMAP_OK 1
#define VB_BITMAP_INCONSISTENT 2
int vb_image_bitmap_state (struct vb_domain *d, const char *path,
                           const char *name);
/* Create checkpoint NAME (child of PARENT, may be NULL) of a shut-off
 * domain: an enabled persistent bitmap in each of DISKS (qcow2), and the
 * checkpoint metadata redefined in libvirt.  All or nothing: on failure
 * the bitmaps it added are removed again, newest first. */
int vb_offline_checkpoint_create (struct vb_domain *d, const char *name,
                                  const char *parent,
                                  const char *const *disks);
/* The checkpoint XML vb_offline_checkpoint_create redefines, built with
 * libxml2 around D's parsed domain XML (exposed for unit tests). */
char *vb_offline_checkpoint_xml (struct vb_domain *d, const char *name,
                                 const char *parent,
                                 const char *const *disks);
/* Remove checkpoint NAME of a shut-off domain: its bitmaps in every qcow2
 * disk that has one, and its metadata. */
int vb_offline_checkpoint_delete (struct vb_domain *d, const char *name);

/* Running domain: remove the QEMU bitmaps for which STRAY says yes (names
 * of checkpoints libvirt lost).  0 or -1. */
int vb_remove_stray_bitmaps (struct vb_domain *d,
                             bool (*stray) (const char *name, void *opaque),
                             void *opaque);

/* State of bitmap NAME of a disk (as vb_image_bitmap_state): from QEMU
 * for a running domain, from the image for a shut-off one. */
int vb_disk_bitmap_state (struct vb_domain *d, const struct vb_disk *disk,
                          const char *name);

/* ---- checkpoint identity ----
 * A full backup reuses the names of the checkpoints it replaces, so a name
 * does not say which backup made a checkpoint. */
/* <creationTime> of a checkpoint XML, in seconds; -1 with an error. */
long long vb_checkpoint_created (const char *xml);
/* Is LIVE (libvirt's XML of a checkpoint now) the very checkpoint SAVED
 * (the XML kept with a backup chain)?  1 yes; 0 no, with the error saying
 * what differs ("libvirt's was created T2, the chain's T1"); -1 when either
 * lacks a name or a creation time.  Pure: no libvirt call. */
int vb_checkpoint_same (const char *saved, const char *live);
/* vb_checkpoint_same against libvirt's checkpoint NAME of D; -1 also when D
 * has no checkpoint NAME. */
int vb_checkpoint_matches (struct vb_domain *d, const char *name,
                           const char *saved);

/* ---- without a domain of our own (restore --define) ----
 * Each opens its own connection to URI (NULL: "qemu:///system"). */
/* 1 if a domain named NAME exists, 0 if not, -1 when libvirt is out of
 * reach. */
int vb_domain_exists (const char *uri, const char *name);
/* Define XML persistently; returns the new domain's name (malloc'd). */
char *vb_define_domain (const char *uri, const char *xml);
/* Start XML as a transient domain that lives only as long as the returned
 * handle's connection (virDomainCreateXML with AUTODESTROY): nothing is
 * ever defined, and it is destroyed when we close it or die. */
struct vb_domain *vb_domain_create_transient (const char *uri,
                                              const char *xml);
/* Destroy D if it runs (0 also when it does not). */
int vb_domain_destroy (struct vb_domain *d);

/* ---- instant recovery (blockjob.c) ----
 * The disks of an instant-recovery domain are qcow2 overlays backed by
 * NBD; a block pull (QEMU's block-stream) copies into each overlay what it
 * does not hold yet, so the guest's own writes stay, and libvirt drops the
 * backing from the live XML and the image once the job completes.  The job
 * runs in QEMU: it goes on if we die. */
/* Define XML and start it (undefined again if it does not start); the
 * new domain's name. */
char *vb_domain_create (const char *uri, const char *xml);
/* Destroy (if running) and undefine D. */
int vb_domain_remove (struct vb_domain *d);
/* Start the defined, shut-off domain D. */
int vb_domain_start (struct vb_domain *d);
/* Resume D if it is paused; 0 also when it runs. */
int vb_domain_unpause (struct vb_domain *d);
/* virDomainBlockPull of disk TARGET; BANDWIDTH bytes/s, 0: unlimited. */
int vb_block_pull (struct vb_domain *d, const char *target,
                   uint64_t bandwidth);
/* 1 while a block job of TARGET runs (*CUR of *END done), 0 none, -1. */
int vb_block_job (struct vb_domain *d, const char *target, uint64_t *cur,
                  uint64_t *end);
int vb_block_job_speed (struct vb_domain *d, const char *target,
                        uint64_t bandwidth);
/* 1 if the live XML shows a backing store under disk TARGET, 0 if not. */
int vb_disk_backing (struct vb_domain *d, const char *target);

#endif
