/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * QMP, the QEMU Machine Protocol, as QEMU 7.2 speaks it (docs/qmp.md): JSON
 * objects over a socket, CRLF-terminated replies, a
 * greeting, capabilities negotiation, commands with echoed ids, events.
 *
 * All monitors share one thread with its own GMainContext: a slow client
 * never stalls a vCPU, and commands run one at a time, in order. Commands
 * reach the machine through QmpMachineOps; events come from any thread.
 */
#include "block/accounting.h"
#include "block/block.h"
#include "cpu/kvm-stats.h"

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct QmpServer QmpServer;

typedef struct QmpCpuInfo {
    unsigned index;
    int thread_id;
} QmpCpuInfo;

typedef struct QmpBlockInfo {
    const char *device;         /* the drive id; "" for a -blockdev disk */
    const char *qdev;           /* the -device id, or NULL */
    const char *node_name;      /* -blockdev: the device's node, else NULL */
    const char *file_node_name; /* -blockdev: the file node under it, or NULL */
    uint64_t file_size;         /* the image file's bytes */
    const char *file;
    bool readonly;
    BlockCacheFlags cache;
    uint64_t size;          /* guest-visible bytes (block_length) */
    const char *format;     /* block_format: "raw", "qcow2"; NULL reads as "raw" */
    unsigned backing_depth; /* block_backing_depth */
    BlockAcctSnapshot stats; /* the device's I/O (query-blockstats) */
} QmpBlockInfo;

/* query-chardev: one character device. */
typedef struct QmpChardevInfo {
    const char *label;
    char *filename; /* owned: QEMU's description (file, pty:/dev/pts/N, unix:PATH,server=on) */
    bool frontend_open;
} QmpChardevInfo;

/* A device with an id, at /machine/peripheral/ID in the QOM tree (qom-list, qom-get). */
typedef struct QmpPeripheral {
    const char *id;
    const char *driver; /* its QOM type */
} QmpPeripheral;

/* query-migrate; status NULL when no migration ever started. */
typedef struct QmpMigrateInfo {
    const char *status; /* "setup", "active", "completed", "failed", "cancelled" */
    int64_t total_time, setup_time, downtime; /* ms */
    int64_t expected_downtime;                /* ms, while active */
    uint64_t transferred, total, remaining, duplicate, normal, normal_bytes;
    uint64_t dirty_sync_count, dirty_pages_rate; /* passes over the dirty log; pages/s */
    double mbps;
    char error_desc[256]; /* why it failed, when it did ("" otherwise) */
} QmpMigrateInfo;

/* What commands need from the machine; every call comes from the monitor thread. */
typedef struct QmpMachineOps {
    const char *(*status)(void *opaque); /* "running", "paused", "prelaunch", ... */
    void (*stop)(void *opaque);
    bool (*cont)(void *opaque, GError **error); /* refused after an internal error */
    void (*system_reset)(void *opaque);
    void (*system_powerdown)(void *opaque); /* POWERDOWN and the ACPI power button */
    void (*quit)(void *opaque);
    const char *(*name)(void *opaque); /* NULL when -name was not given */
    /* Fills up to max entries, returns how many vCPUs there are. */
    unsigned (*cpus)(void *opaque, QmpCpuInfo *out, unsigned max);
    unsigned (*blocks)(void *opaque, QmpBlockInfo *out, unsigned max);
    unsigned (*chardevs)(void *opaque, QmpChardevInfo *out, unsigned max);
    unsigned (*peripherals)(void *opaque, QmpPeripheral *out, unsigned max);
    const char *(*machine_type)(void *opaque); /* the QOM type of /machine */
    /*
     * Starts sending the VM to uri (in the background); fails at once on a bad
     * uri or a busy VM. fd is the descriptor of an fd:NAME uri (getfd), else
     * -1; it is the machine's to close, whatever happens.
     */
    bool (*migrate)(void *opaque, const char *uri, int fd, GError **error);
    /* -incoming defer: starts receiving from uri; fd as for migrate. */
    bool (*migrate_incoming)(void *opaque, const char *uri, int fd, GError **error);
    void (*migrate_cancel)(void *opaque);
    void (*query_migrate)(void *opaque, QmpMigrateInfo *info);
    /*
     * KVM's statistics of the VM (vcpu -1) or of one vCPU: their description
     * in *stats and their values now (g_free), or NULL (with an error when
     * reading failed) where there are none.
     */
    uint64_t *(*kvm_stats)(void *opaque, int vcpu, const KvmStats **stats, GError **error);
    /* Whether KVM is there and used (query-kvm); NULL: a VM runs, so it is. */
    bool (*kvm)(void *opaque);
} QmpMachineOps;

QmpServer *qmp_server_new(const QmpMachineOps *ops, void *opaque, GError **error);
void qmp_server_free(QmpServer *s);
/* The monitor thread's seccomp filter (util/sandbox.h), once the monitors listen. */
bool qmp_server_sandbox(QmpServer *s, GError **error);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmpServer, qmp_server_free)

/*
 * A listening monitor: "unix:PATH,server=on,wait=off", "tcp:HOST:PORT,server=on,wait=off",
 * or an already listening socket fd (-chardev socket,fd=N).
 */
bool qmp_server_listen(QmpServer *s, const char *spec, GError **error);
bool qmp_server_listen_fd(QmpServer *s, int fd, GError **error);
/*
 * Clients are accepted from now on (until then they wait in the listen
 * queue): once the machine is whole, so that the first answer a client gets
 * already holds the vCPUs' thread ids and the rest of the set-up.
 */
void qmp_server_start(QmpServer *s);

/*
 * Sends an event to every negotiated client; data may be NULL (taken over),
 * and so may s (a VM without monitors: the event goes nowhere).
 * From the monitor thread (inside a command) it goes out at once, before the
 * command's reply; from any other thread it is queued to the monitor thread.
 */
void qmp_server_event(QmpServer *s, const char *name, JsonNode *data);

/* MIGRATION {"status": status}, to clients only if the "events" capability was set. */
void qmp_server_migration_event(QmpServer *s, const char *status);
/* QEMU's defaults for migrate-set-parameters. */
#define QMP_DEFAULT_DOWNTIME_LIMIT 300         /* ms */
#define QMP_MAX_DOWNTIME_LIMIT 2000000         /* ms, as QEMU */
#define QMP_DEFAULT_MAX_BANDWIDTH  (128 << 20) /* bytes/s */

/* MIGRATION_PASS, when the events capability is on. */
void qmp_server_migration_pass_event(QmpServer *s, uint64_t pass);
/* migrate-set-parameters' downtime-limit (ms) and max-bandwidth (bytes/s, 0: none); any thread. */
void qmp_server_migration_params(QmpServer *s, int64_t *downtime_limit, int64_t *max_bandwidth);
/* Whether the return-path capability is on (migration/transport.h); false without a monitor. */
bool qmp_server_migration_return_path(QmpServer *s);

/* Splits a byte stream into complete top-level JSON texts (exposed for tests). */
typedef struct QmpFramer QmpFramer;
QmpFramer *qmp_framer_new(void);
void qmp_framer_free(QmpFramer *f);
/*
 * A complete text, safe to hand to json-glib, when refusal is NULL; else the
 * text broke a rule or a limit where it ends (the rest of it is skipped), and
 * refusal is QEMU's message for it.
 */
typedef void (*QmpTextFunc)(void *opaque, const char *text, size_t len, const char *refusal);
/* Feeds bytes; calls cb once per complete text. */
void qmp_framer_feed(QmpFramer *f, const char *data, size_t len, QmpTextFunc cb, void *opaque);
