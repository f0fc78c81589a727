/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Migration as QMP drives it: `migrate` sends the VM to a URI on a thread of
 * its own, `-incoming URI` or `migrate-incoming` receives one before the
 * vCPUs ever run. A running VM migrates live (pre-copy: RAM goes out while
 * the guest runs, then again what it dirtied, until the rest fits in the
 * downtime limit); a paused one in one go. The source ends in postmigrate
 * with its images handed over, or, when anything fails, runs on as before.
 */
#include "machine/pc-priv.h"
#include "machine/snapshot.h"
#include "migration/transport.h"
#include "util/error.h"
#include "virtio/virtio-pci.h"

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

bool machine_handover(Machine *m, bool own, GError **error)
{
    for (guint i = 0; i < m->virtio->len; i++) {
        if (!virtio_device_handover(virtio_pci_vdev(g_ptr_array_index(m->virtio, i)), own, error)) {
            return false;
        }
    }
    return true;
}

/* The source side's RAM: which pages of the memfd still have to go out. */
typedef struct {
    Machine *m;
    MigWriter *w;
    unsigned long *dirty;
    size_t words;
    bool logging; /* KVM's dirty log and qlite's own tracking are on */
} MigOut;

static uint64_t mig_pending(const MigOut *o)
{
    uint64_t n = 0;
    for (size_t i = 0; i < o->words; i++) {
        n += (uint64_t)__builtin_popcountl(o->dirty[i]);
    }
    return n;
}

static void mig_publish(MigOut *o, uint64_t remaining_pages)
{
    MigStats stats = mig_writer_get_stats(o->w);
    g_mutex_lock(&o->m->mig_lock);
    o->m->mig_stats = stats;
    o->m->mig_remaining = remaining_pages * MIG_PAGE_SIZE;
    g_mutex_unlock(&o->m->mig_lock);
}

static bool mig_cancelled(Machine *m, GError **error)
{
    if (!g_atomic_int_get(&m->mig_cancel)) {
        return false;
    }
    g_set_error(error, QLITE_ERROR, QLITE_ERROR_FAILED, "migration cancelled");
    return true;
}

/* Adds what vCPUs (KVM's log) and qlite's own threads wrote since the last sync. */
static bool mig_sync(MigOut *o, GError **error)
{
    Machine *m = o->m;
    if (!kvm_dirty_log_get(m->kvm, m->mem, o->dirty, error)) {
        return false;
    }
    guest_mem_dirty_collect(m->mem, o->dirty);
    g_mutex_lock(&m->mig_lock);
    uint64_t pass = ++m->mig_passes;
    g_mutex_unlock(&m->mig_lock);
    mig_publish(o, mig_pending(o));
    qmp_server_migration_pass_event(m->qmp, pass);
    return true;
}

/*
 * Sends the pending pages and clears them, at most max_bw bytes per second
 * when max_bw > 0. A page the guest writes meanwhile is sent as it is then
 * and is dirty again for the next pass.
 */
static bool mig_send_pending(MigOut *o, int64_t max_bw, GError **error)
{
    Machine *m = o->m;
    uint64_t left = mig_pending(o), start_bytes = mig_writer_get_stats(o->w).bytes;
    gint64 start = g_get_monotonic_time();
    unsigned batch = 0;
    for (size_t i = 0; i < o->words; i++) {
        unsigned long bits = o->dirty[i];
        o->dirty[i] = 0;
        for (; bits; bits &= bits - 1) {
            uint64_t p = i * GUEST_BITS_PER_LONG + (uint64_t)__builtin_ctzl(bits);
            if (!mig_write_page(o->w, guest_mem_page_gpa(m->mem, p),
                                m->mem->base + p * MIG_PAGE_SIZE, error)) {
                return false;
            }
            left--;
            if (++batch < MIG_BATCH_MAX) {
                continue;
            }
            batch = 0;
            mig_publish(o, left);
            for (;;) {
                if (mig_cancelled(m, error)) {
                    return false;
                }
                uint64_t sent = mig_writer_get_stats(o->w).bytes - start_bytes;
                gint64 due = max_bw > 0 ? start + (gint64)(sent * G_USEC_PER_SEC / max_bw) : 0;
                gint64 now = g_get_monotonic_time();
                if (due <= now) {
                    break;
                }
                g_usleep(MIN(due - now, G_USEC_PER_SEC / 10));
            }
        }
    }
    return mig_writer_flush(o->w, error);
}

/*
 * Pre-copy while the guest runs: all of RAM, then what the guest dirtied
 * meanwhile, pass after pass, until what is left would go out within the
 * downtime limit at the bandwidth the last pass reached (as QEMU, there is
 * no limit on passes: a guest that dirties faster than the link never
 * converges, and migrate_cancel ends it).
 */
static bool mig_precopy(MigOut *o, GError **error)
{
    Machine *m = o->m;
    for (;;) {
        int64_t downtime_limit, max_bw;
        qmp_server_migration_params(m->qmp, &downtime_limit, &max_bw);
        uint64_t bytes0 = mig_writer_get_stats(o->w).bytes;
        gint64 t0 = g_get_monotonic_time();
        if (!mig_send_pending(o, max_bw, error) || !mig_sync(o, error)) {
            return false;
        }
        gint64 us = MAX(g_get_monotonic_time() - t0, 1);
        double bytes_per_ms = (double)(mig_writer_get_stats(o->w).bytes - bytes0) * 1000 / us;
        uint64_t pending = mig_pending(o);
        int64_t expected =
            bytes_per_ms > 0 ? (int64_t)((double)(pending * MIG_PAGE_SIZE) / bytes_per_ms) : 0;
        g_mutex_lock(&m->mig_lock);
        m->mig_expected_down = expected;
        m->mig_dirty_rate = pending * G_USEC_PER_SEC / (uint64_t)us;
        g_mutex_unlock(&m->mig_lock);
        if (expected <= downtime_limit) {
            return true;
        }
    }
}

/* Enters finish-migrate from whatever the VM was in; returns that state. */
static int mig_stop_vm(Machine *m)
{
    for (;;) {
        int st = g_atomic_int_get(&m->runstate);
        if (!g_atomic_int_compare_and_exchange(&m->runstate, st, RUN_STATE_FINISH_MIGRATE)) {
            continue; /* stop or cont just now: look again */
        }
        if (st == RUN_STATE_RUNNING) {
            machine_vm_stop(m);
            qmp_server_event(m->qmp, "STOP", NULL);
        }
        return st;
    }
}

static bool mig_start_logging(MigOut *o, GError **error)
{
    if (!kvm_dirty_log_set(o->m->kvm, o->m->mem, true, error)) {
        return false;
    }
    guest_mem_dirty_start(o->m->mem);
    o->logging = true;
    return true;
}

static void mig_stop_logging(MigOut *o)
{
    if (!o->logging) {
        return;
    }
    g_autoptr(GError) err = NULL;
    guest_mem_dirty_stop(o->m->mem);
    if (!kvm_dirty_log_set(o->m->kvm, o->m->mem, false, &err)) {
        g_warning("migration: %s", err->message);
    }
}

/*
 * The whole stream: RAM while the guest runs (when it does), then the VM
 * stopped, images flushed and let go, the last dirty pages and every
 * device's state. Returns the state the VM was in before it stopped, or -1
 * when it never stopped.
 */
static int mig_send(Machine *m, int fd, bool answer, bool *handed_over, GError **error)
{
    MigOut o = {.m = m, .w = mig_writer_new(fd)};
    uint64_t pages = guest_mem_pages(m->mem);
    o.words = (pages + GUEST_BITS_PER_LONG - 1) / GUEST_BITS_PER_LONG;
    o.dirty = g_new0(unsigned long, o.words);
    for (uint64_t p = 0; p < pages; p++) {
        o.dirty[p / GUEST_BITS_PER_LONG] |= 1UL << (p % GUEST_BITS_PER_LONG);
    }
    int prev = -1;
    bool live = g_atomic_int_get(&m->runstate) == RUN_STATE_RUNNING;
    bool ok =
        machine_save_begin(m, o.w, error) &&
        (!live || (mig_start_logging(&o, error) && mig_sync(&o, error) && mig_precopy(&o, error)));
    if (ok) {
        /* Downtime starts as the vCPUs are told to stop (as QEMU counts it). */
        g_mutex_lock(&m->mig_lock);
        m->mig_stop_us = g_get_monotonic_time();
        g_mutex_unlock(&m->mig_lock);
        prev = mig_stop_vm(m);
        /* Shared disks: the source flushes and unlocks before the destination can take over. */
        *handed_over = ok = machine_handover(m, false, error);
        ok = ok && (!o.logging || mig_sync(&o, error)) && mig_send_pending(&o, 0, error) &&
             machine_save_finish(m, o.w, prev == RUN_STATE_RUNNING, answer, error);
    }
    mig_stop_logging(&o);
    mig_publish(&o, ok ? 0 : mig_pending(&o));
    mig_writer_free(o.w);
    g_free(o.dirty);
    return prev;
}

/* A migration thread's own filter, narrower than the one it inherited. */
static void mig_sandbox(void)
{
    g_autoptr(GError) err = NULL;
    if (!sandbox_apply(SANDBOX_MIGRATION, &err)) {
        g_printerr("qlite: migration: %s\n", err->message);
        _exit(QLITE_EXIT_ERROR);
    }
}

static gpointer mig_out_thread(gpointer opaque)
{
    Machine *m = opaque;
    mig_sandbox();
    g_autoptr(GError) err = NULL;
    GPid child = 0;
    int fd = mig_transport_connect(m->mig_uri, m->mig_out_fd, &child, &err);
    m->mig_out_fd = -1;
    g_mutex_lock(&m->mig_lock);
    m->mig_fd = fd;
    m->mig_setup_ms = ms_since(m->mig_start_us);
    g_mutex_unlock(&m->mig_lock);
    int prev = -1;
    bool handed_over = false;
    bool return_path = qmp_server_migration_return_path(m->qmp);
    if (fd >= 0 && (!return_path || mig_return_path_open(fd, &err))) {
        mig_set_status(m, MIG_STATUS_ACTIVE);
        prev = mig_send(m, fd, return_path, &handed_over, &err);
        if (!err && return_path) {
            mig_return_path_wait(fd, &err);
        }
    }
    if (fd >= 0) {
        g_mutex_lock(&m->mig_lock);
        m->mig_fd = -1;
        g_mutex_unlock(&m->mig_lock);
        close(fd);
    }
    bool ok = mig_transport_finish(child, err ? NULL : &err) && !err;
    bool cancelled = g_atomic_int_get(&m->mig_cancel);
    g_mutex_lock(&m->mig_lock);
    m->mig_total_ms = ms_since(m->mig_start_us);
    m->mig_downtime_ms = prev >= 0 ? (g_get_monotonic_time() - m->mig_stop_us + 500) / 1000 : 0;
    g_mutex_unlock(&m->mig_lock);
    if (ok && !cancelled) {
        g_atomic_int_set(&m->runstate, RUN_STATE_POSTMIGRATE);
        mig_set_status(m, MIG_STATUS_COMPLETED);
        return NULL;
    }
    if (!cancelled) {
        g_warning("migration to %s failed: %s", m->mig_uri, err ? err->message : "unknown error");
        g_mutex_lock(&m->mig_lock);
        g_free(m->mig_error);
        m->mig_error = g_strdup(err ? err->message : "unknown error");
        g_mutex_unlock(&m->mig_lock);
    }
    /* The source carries on as it was. */
    g_autoptr(GError) lock_err = NULL;
    if (handed_over && !machine_handover(m, true, &lock_err)) {
        g_warning("after the failed migration: %s", lock_err->message);
    }
    if (prev == RUN_STATE_RUNNING) {
        g_atomic_int_set(&m->runstate, RUN_STATE_RUNNING);
        machine_vm_resume(m);
        qmp_server_event(m->qmp, "RESUME", NULL);
    } else if (prev >= 0) {
        g_atomic_int_set(&m->runstate, prev);
    }
    mig_set_status(m, cancelled ? MIG_STATUS_CANCELLED : MIG_STATUS_FAILED);
    return NULL;
}

/* Why the VM cannot be sent now (QEMU's words where it has them), or NULL. */
static const char *mig_refusal(Machine *m)
{
    int st = g_atomic_int_get(&m->runstate);
    g_mutex_lock(&m->mig_lock);
    bool busy = m->mig_status == MIG_STATUS_SETUP || m->mig_status == MIG_STATUS_ACTIVE;
    g_mutex_unlock(&m->mig_lock);
    if (busy) {
        return "There's a migration process in progress";
    }
    if (st == RUN_STATE_INMIGRATE) {
        return "Guest is waiting for an incoming migration";
    }
    if (st == RUN_STATE_POSTMIGRATE) {
        return "Can't migrate the vm that was paused due to previous migration";
    }
    if (st == RUN_STATE_INTERNAL_ERROR || st == RUN_STATE_SHUTDOWN) {
        return "the VM cannot be migrated after an internal error or a shutdown";
    }
    return NULL;
}

bool machine_migrate(Machine *m, const char *uri, int fd, GError **error)
{
    const char *why = mig_refusal(m);
    if (why) {
        g_set_error_literal(error, QLITE_ERROR, QLITE_ERROR_INVALID, why);
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    if (m->mig_thread) {
        g_thread_join(m->mig_thread);
        m->mig_thread = NULL;
    }
    g_free(m->mig_uri);
    m->mig_uri = g_strdup(uri);
    m->mig_start_us = g_get_monotonic_time();
    g_mutex_lock(&m->mig_lock);
    m->mig_stats = (MigStats){0};
    m->mig_setup_ms = m->mig_total_ms = m->mig_downtime_ms = 0;
    m->mig_remaining = m->cfg.ram_size;
    m->mig_passes = m->mig_dirty_rate = 0;
    m->mig_expected_down = 0;
    g_clear_pointer(&m->mig_error, g_free);
    g_mutex_unlock(&m->mig_lock);
    g_atomic_int_set(&m->mig_cancel, 0);
    m->mig_out_fd = fd;
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
    info->remaining = m->mig_status == MIG_STATUS_COMPLETED ? 0 : m->mig_remaining;
    info->dirty_sync_count = m->mig_passes;
    info->dirty_pages_rate = m->mig_dirty_rate;
    info->expected_downtime = m->mig_expected_down;
    info->duplicate = m->mig_stats.zero_pages;
    info->normal = m->mig_stats.normal_pages;
    info->normal_bytes = m->mig_stats.normal_pages * MIG_PAGE_SIZE;
    info->mbps = info->total_time ? (double)info->transferred * 8 / 1e3 / info->total_time : 0;
    if (m->mig_status == MIG_STATUS_FAILED && m->mig_error) {
        g_strlcpy(info->error_desc, m->mig_error, sizeof(info->error_desc));
    }
    g_mutex_unlock(&m->mig_lock);
}

/* ---- incoming ---- */

typedef struct {
    Machine *m;
    MigIncoming inc;
    bool running; /* the source's VM ran: this one runs too, unless -S */
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
        /* As QEMU: images this side cannot take leave the VM paused, cont retries. */
        bool owned = machine_handover(m, true, &in->err);
        if (!owned) {
            g_printerr("qlite: %s\n", in->err->message);
        }
        if (m->cfg.start_paused || !in->running || !owned) {
            g_atomic_int_set(&m->runstate, RUN_STATE_PAUSED);
        } else {
            g_atomic_int_set(&m->runstate, RUN_STATE_RUNNING);
            qmp_server_event(m->qmp, "RESUME", NULL);
            machine_vm_resume(m);
        }
        /* Last, as QEMU: whoever sees "completed" sees the final run state. */
        mig_set_status(m, MIG_STATUS_COMPLETED);
    }
    g_clear_error(&in->err);
    g_free(in);
    return G_SOURCE_REMOVE;
}

static gpointer mig_in_thread(gpointer opaque)
{
    mig_sandbox();
    MigIn *in = opaque;
    Machine *m = in->m;
    int fd = mig_transport_accept(&in->inc, &in->err);
    g_mutex_lock(&m->mig_lock);
    m->mig_fd = fd; /* from now on migrate_cancel (or quit) interrupts the stream instead */
    g_mutex_unlock(&m->mig_lock);
    if (fd >= 0) {
        mig_set_status(m, MIG_STATUS_ACTIVE);
        MigStats stats = {0};
        bool answer = false;
        bool ok = machine_snapshot_load(m, fd, &stats, &in->running, &answer, &in->err);
        /* The source asks in the stream; a stream cut short leaves only our own setting. */
        if (answer || qmp_server_migration_return_path(m->qmp)) {
            mig_return_path_send(fd, ok);
        }
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

bool machine_migrate_incoming(Machine *m, const char *uri, int fd, GError **error)
{
    if (g_atomic_int_get(&m->runstate) != RUN_STATE_INMIGRATE || m->mig_thread) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    m->mig_thread ? "The incoming migration has already been started"
                                  : "'-incoming' was not specified on the command line");
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    MigIn *in = g_new0(MigIn, 1);
    in->m = m;
    if (!mig_transport_listen(uri, fd, &in->inc, error)) {
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
    return machine_migrate_incoming(m, m->cfg.incoming, -1, error);
}
