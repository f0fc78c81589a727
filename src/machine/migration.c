/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Migration as QMP drives it: `migrate` sends the VM to a URI on a thread of
 * its own (stop, save every section, hand over), `-incoming URI` or
 * `migrate-incoming` receives one before the vCPUs ever run. Stop-and-copy:
 * the source stops first, so the downtime is the whole transfer; the source
 * ends in postmigrate, or, when anything fails, runs on as before.
 */
#include "machine/pc-priv.h"
#include "machine/snapshot.h"
#include "migration/transport.h"
#include "util/error.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *const mig_status_names[] = {NULL,        "setup",  "active",
                                               "completed", "failed", "cancelled"};

static void mig_set_status(Machine *m, MigStatus status)
{
    g_mutex_lock(&m->mig_lock);
    m->mig_status = status;
    g_mutex_unlock(&m->mig_lock);
    qmp_server_migration_event(m->qmp, mig_status_names[status]);
}

static gint64 ms_since(gint64 start_us)
{
    return (g_get_monotonic_time() - start_us) / 1000;
}

static gpointer mig_out_thread(gpointer opaque)
{
    Machine *m = opaque;
    g_autoptr(GError) err = NULL;
    GPid child = 0;
    int fd = mig_transport_connect(m->mig_uri, &child, &err);
    g_mutex_lock(&m->mig_lock);
    m->mig_fd = fd;
    m->mig_setup_ms = ms_since(m->mig_start_us);
    g_mutex_unlock(&m->mig_lock);
    bool ok = fd >= 0;
    bool was_running = false;
    gint64 stopped_us = 0;
    MigStats stats = {0};
    if (ok) {
        mig_set_status(m, MIG_STATUS_ACTIVE);
        was_running = g_atomic_int_compare_and_exchange(&m->runstate, RUN_STATE_RUNNING,
                                                        RUN_STATE_FINISH_MIGRATE);
        if (was_running) {
            machine_vm_stop(m);
        } else {
            g_atomic_int_set(&m->runstate, RUN_STATE_FINISH_MIGRATE);
        }
        stopped_us = g_get_monotonic_time();
        ok = !g_atomic_int_get(&m->mig_cancel) && machine_snapshot_save(m, fd, &stats, &err);
        g_mutex_lock(&m->mig_lock);
        m->mig_fd = -1;
        g_mutex_unlock(&m->mig_lock);
        close(fd);
    }
    ok = mig_transport_finish(child, err ? NULL : &err) && ok;
    bool cancelled = g_atomic_int_get(&m->mig_cancel);
    g_mutex_lock(&m->mig_lock);
    m->mig_stats = stats;
    m->mig_total_ms = ms_since(m->mig_start_us);
    m->mig_downtime_ms = stopped_us ? ms_since(stopped_us) : 0;
    g_mutex_unlock(&m->mig_lock);
    if (ok && !cancelled) {
        g_atomic_int_set(&m->runstate, RUN_STATE_POSTMIGRATE);
        qmp_server_event(m->qmp, "STOP", NULL);
        mig_set_status(m, MIG_STATUS_COMPLETED);
        return NULL;
    }
    if (!cancelled) {
        g_warning("migration to %s failed: %s", m->mig_uri, err ? err->message : "unknown error");
    }
    /* The source carries on as it was. */
    if (was_running) {
        g_atomic_int_set(&m->runstate, RUN_STATE_RUNNING);
        machine_vm_resume(m);
        qmp_server_event(m->qmp, "RESUME", NULL);
    } else if (fd >= 0) {
        g_atomic_int_set(&m->runstate, RUN_STATE_PAUSED);
    }
    mig_set_status(m, cancelled ? MIG_STATUS_CANCELLED : MIG_STATUS_FAILED);
    return NULL;
}

bool machine_migrate(Machine *m, const char *uri, GError **error)
{
    int st = g_atomic_int_get(&m->runstate);
    g_mutex_lock(&m->mig_lock);
    bool busy = m->mig_status == MIG_STATUS_SETUP || m->mig_status == MIG_STATUS_ACTIVE;
    g_mutex_unlock(&m->mig_lock);
    if (busy) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "There's a migration process in progress");
        return false;
    }
    if (st == RUN_STATE_INMIGRATE || st == RUN_STATE_INTERNAL_ERROR || st == RUN_STATE_SHUTDOWN ||
        st == RUN_STATE_POSTMIGRATE) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "the VM cannot be migrated in state %s", machine_runstate_name(m));
        return false;
    }
    if (m->mig_thread) {
        g_thread_join(m->mig_thread);
        m->mig_thread = NULL;
    }
    g_free(m->mig_uri);
    m->mig_uri = g_strdup(uri);
    m->mig_start_us = g_get_monotonic_time();
    m->mig_stats = (MigStats){0};
    m->mig_setup_ms = m->mig_total_ms = m->mig_downtime_ms = 0;
    g_atomic_int_set(&m->mig_cancel, 0);
    mig_set_status(m, MIG_STATUS_SETUP);
    m->mig_thread = g_thread_new("migration", mig_out_thread, m);
    return true;
}

void machine_migrate_cancel(Machine *m)
{
    g_mutex_lock(&m->mig_lock);
    if (m->mig_status == MIG_STATUS_SETUP || m->mig_status == MIG_STATUS_ACTIVE) {
        g_atomic_int_set(&m->mig_cancel, 1);
        /* A socket: the blocked write, read or accept returns. */
        if (m->mig_fd >= 0) {
            shutdown(m->mig_fd, SHUT_RDWR);
        }
    }
    g_mutex_unlock(&m->mig_lock);
}

void machine_query_migrate(Machine *m, QmpMigrateInfo *info)
{
    g_mutex_lock(&m->mig_lock);
    info->status = mig_status_names[m->mig_status];
    bool running = m->mig_status == MIG_STATUS_SETUP || m->mig_status == MIG_STATUS_ACTIVE;
    info->total_time = running ? ms_since(m->mig_start_us) : m->mig_total_ms;
    info->setup_time = m->mig_setup_ms;
    info->downtime = m->mig_downtime_ms;
    info->transferred = m->mig_stats.bytes;
    info->total = m->cfg.ram_size;
    info->remaining = m->mig_status == MIG_STATUS_COMPLETED ? 0 : m->cfg.ram_size;
    info->duplicate = m->mig_stats.zero_pages;
    info->normal = m->mig_stats.normal_pages;
    info->normal_bytes = m->mig_stats.normal_pages * MIG_PAGE_SIZE;
    info->mbps = info->total_time ? (double)info->transferred * 8 / 1e3 / info->total_time : 0;
    g_mutex_unlock(&m->mig_lock);
}

/* ---- incoming ---- */

typedef struct {
    Machine *m;
    MigIncoming inc;
    GError *err;
} MigIn;

static gboolean mig_in_done(gpointer opaque)
{
    MigIn *in = opaque;
    Machine *m = in->m;
    if (in->err) {
        g_printerr("qlite: load of migration failed: %s\n", in->err->message);
        mig_set_status(m, MIG_STATUS_FAILED);
        machine_request_exit(m, QLITE_EXIT_ERROR, "incoming migration failed");
    } else {
        mig_set_status(m, MIG_STATUS_COMPLETED);
        if (m->cfg.start_paused) {
            g_atomic_int_set(&m->runstate, RUN_STATE_PAUSED);
        } else {
            g_atomic_int_set(&m->runstate, RUN_STATE_RUNNING);
            qmp_server_event(m->qmp, "RESUME", NULL);
            machine_vm_resume(m);
        }
    }
    g_clear_error(&in->err);
    g_free(in);
    return G_SOURCE_REMOVE;
}

static gpointer mig_in_thread(gpointer opaque)
{
    MigIn *in = opaque;
    Machine *m = in->m;
    int fd = mig_transport_accept(&in->inc, &in->err);
    g_mutex_lock(&m->mig_lock);
    m->mig_fd = fd; /* from now on migrate_cancel (or quit) interrupts the stream instead */
    g_mutex_unlock(&m->mig_lock);
    if (fd >= 0) {
        mig_set_status(m, MIG_STATUS_ACTIVE);
        MigStats stats = {0};
        bool ok = machine_snapshot_load(m, fd, &stats, &in->err);
        g_mutex_lock(&m->mig_lock);
        m->mig_fd = -1;
        g_mutex_unlock(&m->mig_lock);
        close(fd);
        if (!mig_transport_finish(in->inc.child, ok ? &in->err : NULL)) {
            ok = false;
        }
        g_mutex_lock(&m->mig_lock);
        m->mig_stats = stats;
        m->mig_total_ms = ms_since(m->mig_start_us);
        g_mutex_unlock(&m->mig_lock);
    }
    g_main_context_invoke(m->ctx, mig_in_done, in);
    return NULL;
}

bool machine_migrate_incoming(Machine *m, const char *uri, GError **error)
{
    if (g_atomic_int_get(&m->runstate) != RUN_STATE_INMIGRATE || m->mig_thread) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    m->mig_thread ? "The incoming migration has already been started"
                                  : "'-incoming' was not specified on the command line");
        return false;
    }
    MigIn *in = g_new0(MigIn, 1);
    in->m = m;
    if (!mig_transport_listen(uri, &in->inc, error)) {
        g_free(in);
        return false;
    }
    m->mig_start_us = g_get_monotonic_time();
    g_mutex_lock(&m->mig_lock);
    m->mig_fd = in->inc.listen_fd; /* a shutdown ends a wait in accept */
    g_mutex_unlock(&m->mig_lock);
    mig_set_status(m, MIG_STATUS_SETUP);
    m->mig_thread = g_thread_new("migration", mig_in_thread, in);
    return true;
}

bool machine_start_incoming(Machine *m, GError **error)
{
    if (!m->cfg.incoming || strcmp(m->cfg.incoming, "defer") == 0) {
        return true;
    }
    return machine_migrate_incoming(m, m->cfg.incoming, error);
}
